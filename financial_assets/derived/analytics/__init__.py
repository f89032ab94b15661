"""SQL of the ANALYTICS tables (a package so the .sql files ship as package data)."""
