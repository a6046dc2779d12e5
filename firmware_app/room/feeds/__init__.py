"""Sans-IO parsers of the upstream MQTT payloads (Zigbee2MQTT, Frigate, ONVIF bridges) into room
events: pure functions of (topic, payload bytes), raising ``MalformedPayload`` and nothing else."""
