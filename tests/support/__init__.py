"""What several test levels share: harnesses, fixtures and the processes tests start."""
