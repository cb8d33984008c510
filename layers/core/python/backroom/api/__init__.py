"""HTTP plumbing shared by the three dialects: auth headers, error formats, resolvers."""
