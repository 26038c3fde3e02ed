"""What the core reads from and writes to the system database: values (safe codec, reads), the bulk writer."""
