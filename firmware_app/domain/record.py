"""The identity record (本人確認情報): the 40 items of 別添２ №2, as one frozen value.

Codes, dates and flags are ASCII strings exactly as the register sends them; dates are
``YYYYMMDD`` (西暦), and a birth date may carry ``00`` for an unknown month or day
(生年月日不詳).  Text items travel with their 外字 counts; 外字 are private-use code points
(U+E000–U+F8FF) standing for 住基ネット統一文字 outside UCS.  A foreign resident's 通称 is
carried in the name items as ``本名（通称）``.  Validation lives in ``validate.py``.
"""

from __future__ import annotations

import msgspec


class IdentityRecord(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """One version of one resident's 本人確認情報 (items 1–40, in layout order)."""

    resident_code: str  # 1 住民票コード
    name_kanji: str  # 2 漢字氏名
    name_gaiji_count: int  # 3 外字数(氏名)
    name_kana: str  # 4 ふりがな氏名
    name_seion_kana: str  # 5 清音化かな氏名
    birth_date: str  # 6 生年月日
    sex: str  # 7 性別
    municipality_code: str  # 8 市町村コード
    oaza_code: str  # 9 大字・字コード
    postal_code: str  # 10 郵便番号
    address: str  # 11 住所
    address_gaiji_count: int  # 12 外字数(住所)
    individual_number: str  # 13 個人番号 ("" until assigned)
    became_resident_on: str  # 14 住民となった日
    address_set_on: str  # 15 住所を定めた日
    notified_on: str  # 16 届出の年月日
    previous_municipality_code: str  # 17 市町村コード(転入前)
    previous_address: str  # 18 転入前住所
    previous_address_gaiji_count: int  # 19 外字数(転入前住所)
    relationship: str  # 20 続柄
    change_reason: str  # 21 異動事由
    change_date: str  # 22 異動年月日
    change_reason_detail: str  # 23 異動事由詳細
    former_resident_code: str  # 24 旧住民票コード
    resident_code_used_from: str  # 25 住民票コード使用年月日
    request_control_number: str  # 26 依頼管理番号
    operator_id: str  # 27 操作者ID
    terminal_id: str  # 28 操作端末ID
    update_sequence: int  # 29 更新順番号
    error_update_sequence: int  # 30 異常時更新順番号
    update_prohibited: str  # 31 更新禁止フラグ
    scheduled_flag: str  # 32 予定者フラグ
    exclusive_flag: str  # 33 排他フラグ
    gaiji_flag: str  # 34 外字フラグ
    record_status: str  # 35 レコード状況フラグ
    timestamp: str  # 36 タイムスタンプ (YYYYMMDDhhmmss)
    former_surname_kanji: str  # 37 旧氏 漢字
    former_surname_gaiji_count: int  # 38 旧氏 外字数
    former_surname_kana: str  # 39 旧氏 ふりがな
    former_surname_gaiji_seq: int  # 40 旧氏 外字変更連番

    def __repr__(self) -> str:
        # Personal data must not reach a log line, a traceback or a test report by accident.
        return "IdentityRecord(<40 items redacted>)"


#: Item number of every field, in layout order (1-based), for error messages.
ITEM_NUMBER: dict[str, int] = {name: i for i, name in enumerate(IdentityRecord.__struct_fields__, 1)}

assert len(ITEM_NUMBER) == 40

#: Flag values (items 31–34).
FLAG_OFF = "0"
FLAG_ON = "1"

#: Record status (item 35): the version is live, or the resident was removed (消除).
STATUS_LIVE = "0"
STATUS_REMOVED = "1"

_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(IdentityRecord)


def encode_record(record: IdentityRecord) -> bytes:
    """The record's compact serialisation (a msgpack array of the 40 items)."""
    return _ENCODER.encode(record)


def decode_record(data: bytes) -> IdentityRecord:
    """Inverse of :func:`encode_record`; raises ``msgspec.DecodeError`` on malformed bytes."""
    return _DECODER.decode(data)
