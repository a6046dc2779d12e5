"""The change-reason (異動事由) table: our design convention, NOT official J-LIS codes.

No public 住基ネット 異動事由 code table exists (domain-facts §2), so these mnemonic codes are
ours; the class decides the record status (a removal ends the resident's live record) and the
retention rule.  Replace this table when the CS interface specification is available.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple


class ReasonClass(enum.StrEnum):
    """What a change does to the resident's record."""

    ENTRY = "entry"  # 記載系: the resident appears in this municipality.
    REMOVAL = "removal"  # 消除系: the resident leaves the live file.
    MODIFICATION = "modification"  # 修正系: the record changes, the resident stays.


class Reason(NamedTuple):
    """One change reason: its Japanese name and its class."""

    name_ja: str
    reason_class: ReasonClass


_E, _R, _M = ReasonClass.ENTRY, ReasonClass.REMOVAL, ReasonClass.MODIFICATION

#: Change-reason code → reason (convention, see the module docstring).
REASONS: Mapping[str, Reason] = MappingProxyType(
    {
        "TENNYU": Reason("転入", _E),
        "TOKUREI_TENNYU": Reason("特例転入", _E),
        "SHUSSEI": Reason("出生", _E),
        "SHOKKEN_KISAI": Reason("職権記載", _E),
        "TENSHUTSU": Reason("転出", _R),
        "SHIBOU": Reason("死亡", _R),
        "SHOKKEN_SHOJO": Reason("職権消除", _R),
        "TENKYO": Reason("転居", _M),
        "SHIMEI_HENKO": Reason("氏名の変更", _M),
        "SHOKKEN_SHUSEI": Reason("職権修正", _M),
        "JUMINHYO_CODE_HENKO": Reason("住民票コードの記載の変更", _M),
        "KOJIN_BANGO_HENKO": Reason("個人番号の変更", _M),
        "KYUUJI_KISAI": Reason("旧氏の記載", _M),
        "KYUUJI_HENKO": Reason("旧氏の変更", _M),
        "KYUUJI_SAKUJO": Reason("旧氏の削除", _M),
        "FURIGANA_KISAI": Reason("氏名の振り仮名の記載", _M),
    }
)


def reason_class(code: str) -> ReasonClass:
    """The class of a change-reason code; KeyError for a code not in ``REASONS``."""
    reason = REASONS.get(code)
    if reason is None:
        raise KeyError("unknown change reason code")
    return reason.reason_class
