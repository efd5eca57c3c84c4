"""gcorn.dirty."""
