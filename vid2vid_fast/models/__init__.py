"""The vid2vid model: generator, discriminators, losses and ground-truth flow sources."""
