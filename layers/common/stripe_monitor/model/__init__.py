"""The monitor's own data types, shared by every other part; they import nothing of the project's but
each other."""
