"""The Mall Service Provider (MSP): its own server, database and migrations
between the vendors of the mall network (docs/mall.md "The MSP")."""
