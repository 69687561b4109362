"""Storage: tables, migrations, the repository's statements, the engine, the change bus,
and the two read paths behind one interface (the engine's, and SQLite's on the loop)."""
