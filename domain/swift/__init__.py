"""SWIFT renderings of depositor notices (pure: no I/O).

`SwiftNotice` is what a rendering needs; `swift_notice_from_content` builds one
from a notice version's recorded content; `render_mt564` gives the ISO 15022
MT564 text; `seme_for` is the stable message reference of a notice version.

The ISO 20022 XML (seev.031 / seev.039) is serialisation to a wire format
with python-iso20022's generated models, so it lives with the SWIFT channel
adapter (adapters/channels/iso20022.py): importing those models costs ~3 s
and pulls in `requests`, which the domain must not.
"""

from domain.swift.mt564 import render_mt564
from domain.swift.notice import (
    CashEntitlement,
    MessageFunction,
    SwiftNotice,
    corp_reference,
    message_function,
    seme_for,
    swift_notice_from,
    swift_notice_from_content,
)

__all__ = [
    "CashEntitlement",
    "MessageFunction",
    "SwiftNotice",
    "corp_reference",
    "message_function",
    "render_mt564",
    "seme_for",
    "swift_notice_from",
    "swift_notice_from_content",
]
