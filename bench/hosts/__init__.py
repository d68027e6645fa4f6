"""Stand-ins for a platform's runtime: what starts a function and hands it events."""
