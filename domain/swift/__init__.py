"""SWIFT renderings of depositor notices (pure: no I/O).

`SwiftNotice` is what a rendering needs; `render_mt564` gives the ISO 15022
MT564 text, `render_seev031` the ISO 20022 XML (seev.031, or seev.039 for a
cancellation); `seme_for` is the stable message reference of a notice version.

Importing this package loads python-iso20022's seev models (measured here:
~3 s and ~60 MiB once per process, as its `seev` package imports every seev
message): import it when the process starts, not first inside the event loop.
"""

from domain.swift.iso20022 import iso20022_message, render_seev031, render_seev039
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
    "iso20022_message",
    "message_function",
    "render_mt564",
    "render_seev031",
    "render_seev039",
    "seme_for",
    "swift_notice_from",
    "swift_notice_from_content",
]
