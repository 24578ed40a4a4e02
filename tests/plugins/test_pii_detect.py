# ruff: noqa: RUF001  (the Chinese test text is full of full-width punctuation and digits on purpose)
"""The pii detectors (clawdbot.plugins.pii_detect) and their validators (pii_checks): positives,
hard negatives, checksum edge cases, boundaries in Chinese text, overlaps."""

from __future__ import annotations

from datetime import date

import pytest

from clawdbot.plugins.pii_checks import (
    card_prefix_ok,
    cn_id_ok,
    entropy_min,
    iban_ok,
    looks_random,
    luhn_ok,
    shannon_entropy,
)
from clawdbot.plugins.pii_detect import TYPES, Span, detect, fold, resolve


def found(text: str, *types: str) -> list[tuple[str, str]]:
    return [(s.type, s.text) for s in detect(text, types or TYPES)]


# -- independent check-digit makers (a different formulation from the validators) -----------------

def id_check(first17: str) -> str:
    w = [2 ** (17 - i) % 11 for i in range(17)]  # GB 11643's weights, derived rather than listed
    c = (12 - sum(int(d) * k for d, k in zip(first17, w, strict=True)) % 11) % 11
    return "X" if c == 10 else str(c)


def luhn_digit(body: str) -> str:
    for d in "0123456789":
        digits = [int(c) for c in body + d][::-1]
        if sum(x if i % 2 == 0 else (x * 2 if x < 5 else x * 2 - 9) for i, x in enumerate(digits)) % 10 == 0:
            return d
    raise AssertionError


def iban_with_check(cc: str, bban: str) -> str:
    n = int("".join(str(int(c, 36)) for c in bban + cc + "00"))
    return f"{cc}{98 - n % 97:02d}{bban}"


# -- e-mail -----------------------------------------------------------------------------------

@pytest.mark.parametrize("text,value", [
    ("mail me at sarah.connor@example.com today", "sarah.connor@example.com"),
    ("邮箱zhang.san@163.com，谢谢", "zhang.san@163.com"),
    ("<first.last+tag@sub.example.co.uk>", "first.last+tag@sub.example.co.uk"),
    ("mailto:joe@example.org", "joe@example.org"),
    ("SUPPORT@EXAMPLE.COM.", "SUPPORT@EXAMPLE.COM"),
    ("info@müller-example.de", "info@müller-example.de"),
    ("13812345678@139.com", "13812345678@139.com"),  # a phone-number address: one e-mail, not a phone
])
def test_email_found(text: str, value: str) -> None:
    assert found(text) == [("EMAIL", value)]


@pytest.mark.parametrize("text", [
    "user@localhost", "a@b", "x..y@example.com", "name.@example.com", "@example.com",
    "version 1.2@3", "postgres://app:pw1234567@db.example.com/x",  # a URL's password, not an address
])
def test_email_not_found(text: str) -> None:
    assert [t for t, _ in found(text)] in ([], ["SECRET"])


# -- phones -----------------------------------------------------------------------------------

@pytest.mark.parametrize("text,value", [
    ("我的电话13812345678。", "13812345678"),
    ("电话：139-1234-5678，下午", "139-1234-5678"),
    ("手机 138 1234 5678 联系", "138 1234 5678"),
    ("联系方式+86 186 1234 5678", "+86 186 1234 5678"),
    ("(+86)13912345678", "(+86)13912345678"),
    ("0086 135 0000 1234", "0086 135 0000 1234"),
    ("手机号１３８１２３４５６７８请回电", "１３８１２３４５６７８"),  # full-width digits
    ("座机010-62345678", "010-62345678"),
    ("(0755)26881234", "(0755)26881234"),
    ("call +1 (415) 555-0132 now", "+1 (415) 555-0132"),
    ("call (212) 555-0187, ext. 204", "(212) 555-0187"),
    ("212.555.0160", "212.555.0160"),
    ("1-800-555-0143", "1-800-555-0143"),
    ("+44 20 7946 0958 or", "+44 20 7946 0958"),
    ("+33 6 12 34 56 78", "+33 6 12 34 56 78"),
    ("+81 3-1234-5678", "+81 3-1234-5678"),
    ("+91 98765 43210", "+91 98765 43210"),
])
def test_phone_found(text: str, value: str) -> None:
    assert found(text, "PHONE") == [("PHONE", value)]


@pytest.mark.parametrize("text", [
    "订单号12345678901",  # 11 digits, not 1[3-9]
    "订单ORD-13812345678-01",  # inside an order id
    "价格¥13812345678.00",  # the integer part of an amount? no: followed by decimals
    "1.13812345678",  # after a decimal point
    "138123456789",  # 12 digits
    "1381234567",  # 10 digits
    "x13812345678",  # glued to a word
    "14012345678",  # 140: 13-digit IoT range
    "timestamp 1710489600123",
    "2024-01-15 13:45:00",
    "+1 555 0100",  # +1 needs 10 digits
    "+5 points",
    "ISBN 978-0-13-468599-1",
    "SSN-like 123-45-6789",
])
def test_phone_not_found(text: str) -> None:
    assert found(text, "PHONE") == []


def test_intl_phone_stops_before_the_next_word() -> None:
    assert found("+44 20 7946 0958 3 times", "PHONE") == [("PHONE", "+44 20 7946 0958")]
    assert found("+1 415 555 0132 2 items", "PHONE") == [("PHONE", "+1 415 555 0132")]


# -- China resident identity numbers ------------------------------------------------------------

def test_cn_id_checksum_and_formats() -> None:
    assert id_check("11010519491231002") == "X"  # the standard's own example
    assert cn_id_ok("11010519491231002X") and cn_id_ok("11010519491231002x")
    assert found("身份证号11010519491231002X，") == [("CN_ID", "11010519491231002X")]
    assert found("ID 110105 19491231 002X end") == [("CN_ID", "110105 19491231 002X")]
    for wrong in "0123456789":  # every other check character fails
        assert not cn_id_ok("11010519491231002" + wrong)
        assert found("身份证号11010519491231002" + wrong + "。", "CN_ID") == []


@pytest.mark.parametrize("first17,why", [
    ("11010519900230123", "30 February"),
    ("11010518991231123", "born before 1900"),
    ("99010519900101123", "no province 99"),
    ("11010519901301123", "month 13"),
])
def test_cn_id_invalid_parts_even_with_a_right_check_digit(first17: str, why: str) -> None:
    assert not cn_id_ok(first17 + id_check(first17)), why


def test_cn_id_future_birth_date() -> None:
    first17 = "11010520990101123"
    value = first17 + id_check(first17)
    assert not cn_id_ok(value)
    assert cn_id_ok(value, today=date(2100, 1, 1))


def test_cn_id_random_valid_numbers() -> None:
    for body in ("44030519610619059", "51010719820703246", "32010219910208645", "61011319690118108"):
        v = body + id_check(body)
        assert cn_id_ok(v) and found(f"证件号{v}。") == [("CN_ID", v)]


def test_cn_id_boundaries() -> None:
    v = "11010519491231002X"
    assert found("1" + v, "CN_ID") == [] and found(v + "1", "CN_ID") == []
    assert found("单号A" + v, "CN_ID") == []


# -- cards ------------------------------------------------------------------------------------

@pytest.mark.parametrize("number", [
    "4111111111111111", "5555555555554444", "378282246310005", "6011111111111117",
    "3530111333300000", "30569309025904", "2223003122003222", "6200000000000005",
    "6222021234567890128"[:18] + luhn_digit("6222021234567890128"[:18]),  # 19-digit UnionPay
])
def test_card_known_test_numbers(number: str) -> None:
    assert luhn_ok(number) and card_prefix_ok(number)
    assert found(f"card {number} exp 12/27", "CARD") == [("CARD", number)]


@pytest.mark.parametrize("text,value", [
    ("卡号6228 2122 3307 9247，户名", "6228 2122 3307 9247"),
    ("card 4111-1111-1111-1111.", "4111-1111-1111-1111"),
    ("amex 3782 822463 10005", "3782 822463 10005"),
    ("银行卡６２２８２１２２３３０７９２４７", "６２２８２１２２３３０７９２４７"),
])
def test_card_formats(text: str, value: str) -> None:
    assert found(text, "CARD") == [("CARD", value)]


@pytest.mark.parametrize("text", [
    "card 4111111111111112",  # fails Luhn
    "4111 1111-1111 1111",  # mixed separators
    "order 20240115123456780",  # a 17-digit timestamp-like id (prefix 20, not 2221-2720)
    "serial 1234567812345670",  # passes Luhn, but no issuer starts with 1
    "7000 0012 3456 7899",
    "4111111111111111111111",  # 22 digits
    "amount 4111111111111111.50",
    "**** **** **** 4242",
])
def test_card_not_found(text: str) -> None:
    assert found(text, "CARD") == []


def test_luhn_every_wrong_last_digit_fails() -> None:
    body = "453201511283036"
    good = body + luhn_digit(body)
    assert luhn_ok(good)
    assert [d for d in "0123456789" if luhn_ok(body + d)] == [good[-1]]


# -- IBAN -------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [
    "DE89 3704 0044 0532 0130 00", "GB82 WEST 1234 5698 7654 32", "GB82WEST12345698765432",
    "FR14 2004 1010 0505 0001 3M02 606", "NL91ABNA0417164300", "CH93 0076 2011 6238 5295 7",
    "NO93 8601 1117 947", "BE68 5390 0754 7034", "IT60 X054 2811 1010 0000 0123 456",
    "PL61 1090 1014 0000 0712 1981 2874", "SE45 5000 0000 0583 9825 7466",
])
def test_iban_found(value: str) -> None:
    assert iban_ok(value.replace(" ", ""))
    assert found(f"pay to {value}, thanks", "IBAN") == [("IBAN", value)]
    assert found(f"账户{value}，谢谢", "IBAN") == [("IBAN", value)]


def test_iban_check_digits_and_lengths() -> None:
    v = iban_with_check("DE", "370400440532013000")
    assert v == "DE89370400440532013000"
    for cd in range(100):  # only the right check digits pass
        assert iban_ok(f"DE{cd:02d}370400440532013000") == (cd == 89)
    assert not iban_ok("DE89370400440532013")  # too short for DE
    assert not iban_ok("XX89370400440532013000")  # unknown country
    assert found("ref DE12 3456 7890 1234 5678 90 is a contract", "IBAN") == []


def test_iban_followed_by_a_word_of_four() -> None:
    assert found("DE89 3704 0044 0532 0130 00 BANK", "IBAN") == [("IBAN", "DE89 3704 0044 0532 0130 00")]
    assert found("NL91 ABNA 0417 1643 00 ABCD", "IBAN") == [("IBAN", "NL91 ABNA 0417 1643 00")]


# -- IP addresses -----------------------------------------------------------------------------

@pytest.mark.parametrize("text,value", [
    ("server 192.168.1.10 down", "192.168.1.10"),
    ("IP是47.95.123.18。", "47.95.123.18"),
    ("from 203.0.113.7:443", "203.0.113.7"),
    ("host 10.0.0.5/24", "10.0.0.5"),
    ("v6 2001:db8::1: refused", "2001:db8::1"),
    ("[2001:db8:85a3::8a2e:370:7334]:443", "2001:db8:85a3::8a2e:370:7334"),
    ("IPv6：240e:3a1:4c8:12b0:a1b2:c3d4:e5f6:789a", "240e:3a1:4c8:12b0:a1b2:c3d4:e5f6:789a"),
    ("::ffff:192.0.2.128 mapped", "::ffff:192.0.2.128"),
    ("fe80::1ff:fe23:4567:890a%eth0", "fe80::1ff:fe23:4567:890a"),
])
def test_ip_found(text: str, value: str) -> None:
    assert found(text, "IP") == [("IP", value)]


@pytest.mark.parametrize("text", [
    "192.168.300.1", "version 1.2.3.4", "v10.0.0.1", "版本1.0.0.1", "build 2.0.1.5", "10.0.19045.3693",
    "1.2.3.4.5", "time 12:30:45", "mac 3c:22:fb:1a:2b:3c", "std::vector<int>", "127.0.0.1", "0.0.0.0:8080",
    "::1", "a::b", "10.0.0.0/8", "01.02.03.04",
])
def test_ip_not_found(text: str) -> None:
    assert found(text, "IP") == []


# -- secrets ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text,value", [
    ("key sk-proj-abc123DEF456ghi789JKL012mno345 x", "sk-proj-abc123DEF456ghi789JKL012mno345"),
    ("AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
    ("token ghp_16C7e42F292c6912E7710c838347Ae178B4a", "ghp_16C7e42F292c6912E7710c838347Ae178B4a"),
    ("xoxb-123456789012-1234567890123-aBcDeFgHiJkLmNoPqRsTuVwX",
     "xoxb-123456789012-1234567890123-aBcDeFgHiJkLmNoPqRsTuVwX"),
    ("AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q", "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q"),
    ("阿里云LTAI5tQ9xZ3mN7pR2sV8kW1y已禁用", "LTAI5tQ9xZ3mN7pR2sV8kW1y"),
    ("password=Hunter2!x; next", "Hunter2!x"),
    ('db.password="Zx9#kLm2$Qw8"', "Zx9#kLm2$Qw8"),
    ("my password is hunter22.", "hunter22"),
    ("密码是Abc@123456，登录不了", "Abc@123456"),
    ("Authorization: Bearer abc.DEF123.ghi456jkl", "abc.DEF123.ghi456jkl"),
    ("postgres://app:Xq7!vR2pLm9z@db.example.com/prod", "Xq7!vR2pLm9z"),
    ("mysql://root:Root@2024db@10.2.3.4:3306/shop", "Root@2024db"),
    ("session aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z ok", "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z"),
])
def test_secret_found(text: str, value: str) -> None:
    assert ("SECRET", value) in found(text, "SECRET")


def test_private_key_block_is_one_secret() -> None:
    body = "MIIEowIBAAKCAQEAx1b2c3d4e5f6g7h8i9j0\nQWERTYuiop1234567890asdfghJKLzxcvbnm"
    pem = f"-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----"
    assert found(f"key:\n{pem}\nthanks") == [("SECRET", pem)]


@pytest.mark.parametrize("text", [
    "commit 9f2c4e1b7a3d5f6e8c0b1a2d3e4f5a6b7c8d9e0f",  # hex
    "id 123e4567-e89b-12d3-a456-426614174000",  # UUID
    "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "use sk-learn-compatible-estimators-please",  # no digits: not a key
    "AmazonS3ReadOnlyAccessPolicyV2ForLambda",  # a name
    "/usr/local/lib/python3.11/site-packages/numpy",
    "password is required",  # a word
    "password: ********",
    "密码错误次数过多请稍后再试",
    "bypass: enabled1234",  # the key word inside a longer word
])
def test_secret_not_found(text: str) -> None:
    assert found(text, "SECRET") == []


def test_entropy_threshold_grows_with_length() -> None:
    assert entropy_min(24) < entropy_min(32) < entropy_min(64) <= entropy_min(500) == 5.0
    assert shannon_entropy("aaaa") == 0.0 and shannon_entropy("abcd") == 2.0
    assert looks_random("aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z")
    assert not looks_random("aB3dE5fG7hJ9kL1mN3pQ5rS")  # 23 chars: too short


# -- boundaries, normalisation, overlaps ---------------------------------------------------------

def test_fold_keeps_offsets() -> None:
    s = "电话：１３８１２３４５６７８，ＡＢＣ"
    f = fold(s)
    assert len(f) == len(s) and f == "电话：13812345678，ABC"  # Chinese punctuation stays
    assert fold("plain ascii") == "plain ascii"


def test_chinese_text_without_spaces() -> None:
    text = "客户王先生电话13912345678邮箱wang@example.cn身份证11010519491231002X银行卡6228212233079247。"
    assert found(text) == [("PHONE", "13912345678"), ("EMAIL", "wang@example.cn"),
                           ("CN_ID", "11010519491231002X"), ("CARD", "6228212233079247")]


def test_overlaps_longest_then_most_specific() -> None:
    assert resolve([Span("PHONE", 0, 11, "x"), Span("EMAIL", 0, 19, "y")]) == [Span("EMAIL", 0, 19, "y")]
    assert resolve([Span("CARD", 0, 18, "x"), Span("CN_ID", 0, 18, "x")]) == [Span("CN_ID", 0, 18, "x")]
    assert resolve([Span("IP", 5, 9, "b"), Span("IP", 0, 4, "a")]) == [Span("IP", 0, 4, "a"), Span("IP", 5, 9, "b")]


def test_spans_are_offsets_into_the_original() -> None:
    text = "１３８１２３４５６７８ and a@b.co and sk-proj-abc123DEF456ghi789JKL012mno345"
    for s in detect(text):
        assert text[s.start:s.end] == s.text


def test_only_the_asked_types() -> None:
    text = "a@b.co 13812345678"
    assert found(text, "EMAIL") == [("EMAIL", "a@b.co")]
    assert found(text, "PHONE") == [("PHONE", "13812345678")]
    assert detect("") == []
