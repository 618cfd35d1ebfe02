"""alertbridge: security alerts in, the right ticket out, exactly once."""
