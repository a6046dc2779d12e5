"""Door controllers and readers over RS-485 (OSDP, IEC 60839-11-5), with libosdp as the control panel.

``wiegand`` decodes raw card bits, ``handshake`` watches the secure-channel handshake on our own
line, ``channel`` puts libosdp on a pyserial port, ``translate`` turns libosdp event dicts into
room events, and ``panel`` runs it all on libosdp's thread and hands events to asyncio.
"""
