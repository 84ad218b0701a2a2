"""Typed dependencies of the MSP's routes (besides api/deps.py's DbSession and WriteDb):

- SignedMemberId: the member whose network key signed this request (RFC 9421,
  keyid = member id; saga.member_key_on_loop reads the key per request); 401 problem
  (`reason`) for an unsigned request, an unknown member or a bad signature.
  Blocked members still pass: what they may start is the services' decision
  (members.require_active answers 403).
"""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from ..network.signed_routes import signed_caller
from .saga import member_key_on_loop

SignedMemberId = Annotated[str, Depends(signed_caller(member_key_on_loop))]
