"""Makes tests/<part>/ packages resolve as tests.<part>, not as the parts they test."""
