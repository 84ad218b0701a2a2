"""What vendors and the MSP share to talk to each other: network keys, RFC 9421
signatures, the signed client, the outbox and inbox, the network's money rules
(docs/mall.md)."""
