"""Database access: pool, migrations, embedded server and named queries."""
