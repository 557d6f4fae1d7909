"""gridmap geo core: pure functions over GeoDataFrames and numpy arrays (no app, no database)."""
