"""gcorn.arbiter."""
