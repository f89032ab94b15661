"""Home-care visit conflicts: detected in Snowflake, kept in step in PostgreSQL, per SSN prefix."""
