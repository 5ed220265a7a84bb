"""The shared training core."""
