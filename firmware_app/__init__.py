"""cs-appliance: the software of a municipality's Community Server (市町村CS)."""
