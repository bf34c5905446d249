import pytest

from stripe_monitor.errors import InvalidDestinationIdError
from stripe_monitor.model.ids import validate_destination_id


@pytest.mark.parametrize(
    "good",
    [
        "ed_test_61RM8ltWcTW4mbsxf16RJyfa2xSQLHJJh1sxm7H0KVT6",
        "ed_61TEN0dErlaWJQzTZ16Qafnx2xSQhCzmf0WoqI1pgQSG",
        "ed_123",
    ],
)
def test_stripe_shaped_ids_are_accepted(good):
    assert validate_destination_id(good) == good


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("", "required"),
        (None, "required"),
        (42, "required"),
        ("ed_", "ed_"),
        ("we_123", "ed_"),
        ("ed_test_../x", "letters and digits"),
        ("ed_test_a/b", "letters and digits"),
        ("ed_test_%2Fetc", "letters and digits"),
        ("ed_test_a b", "letters and digits"),
        ("ed_test_ünïcode", "letters and digits"),
        ("ed_test_abc\n", "letters and digits"),
        ("ed_test_" + "a" * 200, "too long"),
    ],
)
def test_anything_else_is_refused_with_a_reason(bad, reason):
    with pytest.raises(InvalidDestinationIdError, match=reason):
        validate_destination_id(bad)
