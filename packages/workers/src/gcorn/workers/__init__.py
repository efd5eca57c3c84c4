"""gcorn.workers."""
