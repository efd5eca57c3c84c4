"""gcorn.cli."""
