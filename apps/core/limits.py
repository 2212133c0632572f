"""Ranges of the database's integer columns, so inputs are refused with a 400 before a write overflows."""

INT32_MAX = 2**31 - 1  # IntegerField / PositiveIntegerField
SMALLINT_MAX = 2**15 - 1  # PositiveSmallIntegerField
BIGINT_MAX = 2**63 - 1  # BigAutoField primary keys, BigIntegerField
