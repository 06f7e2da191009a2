"""Task collections: tasks with descriptions and (input, output) examples, built from public sources."""
