"""gcorn.http."""
