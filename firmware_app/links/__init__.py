"""Sans-IO codecs of the appliance's links: frames, message envelopes and sequence state."""
