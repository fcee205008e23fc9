"""The simulation driver: the loop, output writers, restart files, callbacks (no physics, no config)."""
