"""Training recipes for hypernetworks and plain LoRAs."""
