"""The machine room: door, reader, camera and sensor events in; alarms and the access record out.

Adapters (MQTT, OSDP) turn their wire formats into :mod:`firmware_app.room.events` and hand them
to an :class:`firmware_app.room.inbox.EventSink` (thread-safe ``submit``); the sans-IO state
machines decide what is an alarm; :class:`firmware_app.room.service.RoomService` runs it all.
"""
