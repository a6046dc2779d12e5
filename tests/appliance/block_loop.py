"""Test-only ``sitecustomize`` for the watchdog test in the booted root (put on PYTHONPATH by a
test drop-in, never installed by the product): SIGRTMIN+4 makes the main thread — csd's event
loop — sleep for ten minutes while every other thread runs on, a hung event loop."""

import signal
import time

signal.signal(signal.SIGRTMIN + 4, lambda signum, frame: time.sleep(600))
