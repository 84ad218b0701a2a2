"""All models, imported here so Alembic sees the whole metadata.
Add a module per entity family and import it below."""
from .base import Base, utcnow  # noqa: F401
from .user import User, UserSession  # noqa: F401
from .ledger import LedgerAccount, LedgerHold, LedgerTransfer  # noqa: F401
from .wallet import Bundle, TokenPolicy, TokenPurchase  # noqa: F401
from .idempotency import IdempotencyRecord  # noqa: F401
from .rate_limit import RateLimit  # noqa: F401
from .store import (  # noqa: F401
    Category, Device, License, Offer, OfferTier, Order, OrderItem, Product, ProductVersion,
    SavedOrderList, VendorKey,
)
from .mall import (  # noqa: F401
    Exchange, ExchangeQuote, MallAssertionUse, MallInboxMessage, MallLink, MallMembership, MallOutboxMessage,
)
from .open_tokens import OpenTokenPurchase, OrderOpenPayment  # noqa: F401
