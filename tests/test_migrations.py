"""Migrations on databases that hold rows, on SQLite and PostgreSQL: 0003 makes order
status, certificate status and validation level one spelling each, checked by the
database, up and down (issue 7, "Typed storage"); SQLite's table rebuilds keep every
row and reference."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic import command
from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from conftest import database_environment
from soap_service.storage.db import create_database_engine
from soap_service.storage.models import Certificate, Order, Product
from soap_service.storage.schema import BrokenReferences, alembic_config, schema_change
from soap_service.storage.types import enum_column
from soap_service.vocabulary import CertificateStatus, OrderStatus, ValidationLevel

AT = "2026-01-01 00:00:00"
LATER = "2027-01-01 00:00:00"
TABLES = ("brands", "products", "certificate_authorities", "partners", "orders", "order_names",
          "order_contacts", "issued_serials", "certificates", "blocked_keys")


@pytest.fixture
def empty_database(installation, tmp_path) -> Iterator[Engine]:
    """A new, empty database on the installation's backend, through the service's own engine
    (on SQLite: foreign keys enforced, the condition a table rebuild must survive)."""
    for environ in database_environment(installation.backend, tmp_path, "migrations"):
        engine = create_database_engine(environ["SOAP_SERVICE_DATABASE_URL"])
        try:
            yield engine
        finally:
            engine.dispose()


def migrate(engine: Engine, action: str, revision: str) -> None:
    config = alembic_config()
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        getattr(command, action)(config, revision)


def insert_rows_of_0002(connection: Connection) -> None:
    """What an installation at 0002 holds: an order whose first certificate was revoked and
    replaced, a cancelled order, their names, contacts, serials and a blocked key."""
    def run(statement: str, **values: object) -> None:
        connection.execute(text(statement), values)

    run("INSERT INTO brands (code, name) VALUES ('GEOTRUST', 'GeoTrust')")
    run("INSERT INTO products (code, brand_code, name, validation_level, wildcard_allowed, max_names) "
        "VALUES ('TrueBizID', 'GEOTRUST', 'GeoTrust True BusinessID', 'OV', :no, 25)", no=False)
    run("INSERT INTO certificate_authorities (id, name, role, brand_code, parent_id, certificate_pem, "
        f"protected_key, created_at) VALUES (1, 'GEOTRUST-TLS', 'tls', 'GEOTRUST', NULL, 'pem', :key, '{AT}')",
        key=b"key")
    run(f"INSERT INTO partners (id, code, name, status, created_at) VALUES (1, 'P1', 'Partner', 'active', '{AT}')")
    for pk, status in ((1, "COMPLETED"), (2, "CANCELLED")):
        run("INSERT INTO orders (id, order_id, partner_id, partner_order_id, brand_code, product_code, status, "
            "term_start, term_end, version, created_at, updated_at) VALUES "
            f"(:pk, :order_id, 1, :poid, 'GEOTRUST', 'TrueBizID', :status, '{AT}', '{LATER}', 1, '{AT}', '{AT}')",
            pk=pk, order_id=f"100000000{pk}", poid=f"A-{pk}", status=status)
        run("INSERT INTO order_names (order_pk, name, position) VALUES (:pk, 'example.com', 0)", pk=pk)
        run("INSERT INTO order_contacts (order_pk, role, email) VALUES (:pk, 'admin', 'a@example.com')", pk=pk)
    for pk, status, replaces in ((1, "revoked", None), (2, "valid", 1), (3, "valid", None)):
        order_pk = 2 if pk == 3 else 1
        run("INSERT INTO issued_serials (ca_id, serial, reserved_at) VALUES (1, :serial, :at)",
            serial=f"{pk:x}0", at=AT)
        run("INSERT INTO certificates (id, order_pk, ca_id, serial, subject, names, not_before, not_after, pem, "
            "spki_sha256, csr_pem, csr_sha256, status, replaces_id, issued_at) VALUES "
            f"(:pk, :order_pk, 1, :serial, '', 'example.com', '{AT}', '{LATER}', 'pem', :spki, 'csr', 'sha', "
            f":status, :replaces, '{AT}')",
            pk=pk, order_pk=order_pk, serial=f"{pk:x}0", spki=f"{pk:064x}", status=status, replaces=replaces)
    run("UPDATE orders SET current_certificate_id = 2 WHERE id = 1")
    run("UPDATE orders SET current_certificate_id = 3 WHERE id = 2")
    run(f"INSERT INTO blocked_keys (spki_sha256, reason, blocked_at, certificate_id) "
        f"VALUES (:spki, 'keyCompromise', '{AT}', 1)", spki=f"{1:064x}")


def column(engine: Engine, statement: str) -> list[object]:
    with engine.connect() as connection:
        return list(connection.execute(text(statement)).scalars())


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {table: connection.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one() for table in TABLES}


def refused_by_the_database(engine: Engine, statement: str) -> bool:
    with engine.connect() as connection, connection.begin() as transaction:
        try:
            connection.execute(text(statement))
        except IntegrityError:
            return True
        finally:
            transaction.rollback()
    return False


BAD_SPELLINGS = (
    "UPDATE certificates SET status = 'valid' WHERE id = 2",
    "UPDATE orders SET status = 'completed' WHERE id = 1",
    "UPDATE products SET validation_level = 'ov'",
)


def test_0003_converts_the_rows_and_the_database_refuses_other_spellings(empty_database):
    engine = empty_database
    migrate(engine, "upgrade", "0002")
    with engine.begin() as connection:
        insert_rows_of_0002(connection)
    before = counts(engine)

    migrate(engine, "upgrade", "head")
    assert column(engine, "SELECT status FROM certificates ORDER BY id") == ["REVOKED", "VALID", "VALID"]
    assert column(engine, "SELECT status FROM orders ORDER BY id") == ["COMPLETED", "CANCELLED"]
    assert column(engine, "SELECT validation_level FROM products") == ["OV"]
    assert counts(engine) == before  # the rebuilt tables kept every row
    assert column(engine, "SELECT current_certificate_id FROM orders ORDER BY id") == [2, 3]
    assert column(engine, "SELECT replaces_id FROM certificates ORDER BY id") == [None, 1, None]
    with Session(engine) as session:
        assert session.scalars(select(Certificate.status).order_by(Certificate.id)).all() == [
            CertificateStatus.REVOKED, CertificateStatus.VALID, CertificateStatus.VALID]
        order = session.scalars(select(Order).order_by(Order.id)).first()
        assert order is not None and order.status is OrderStatus.COMPLETED
        assert order.product.validation_level is ValidationLevel.OV
    for statement in BAD_SPELLINGS:
        assert refused_by_the_database(engine, statement), statement
    config = alembic_config()
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        command.check(config)  # the migrated schema is the models'

    migrate(engine, "downgrade", "0002")
    assert column(engine, "SELECT status FROM certificates ORDER BY id") == ["revoked", "valid", "valid"]
    assert column(engine, "SELECT status FROM orders ORDER BY id") == ["COMPLETED", "CANCELLED"]
    assert counts(engine) == before
    for statement in BAD_SPELLINGS:
        assert not refused_by_the_database(engine, statement), statement

    migrate(engine, "upgrade", "head")
    assert column(engine, "SELECT status FROM certificates ORDER BY id") == ["REVOKED", "VALID", "VALID"]


def test_0003_fails_whole_on_a_value_that_is_no_member(empty_database):
    engine = empty_database
    migrate(engine, "upgrade", "0002")
    with engine.begin() as connection:
        insert_rows_of_0002(connection)
        connection.execute(text("UPDATE certificates SET status = 'on hold' WHERE id = 3"))
    with pytest.raises(IntegrityError):
        migrate(engine, "upgrade", "head")
    assert column(engine, "SELECT version_num FROM alembic_version") == ["0002"]
    assert column(engine, "SELECT status FROM certificates ORDER BY id") == ["revoked", "valid", "on hold"]


def test_the_models_refuse_another_spelling_before_the_database(ra):
    """The ORM writes members only: a string that is not one fails at the statement."""
    with ra.sessions() as session, session.begin():
        product = session.get(Product, "TrueBizID")
        assert product is not None and product.validation_level is ValidationLevel.OV
    for statement in (
        Certificate.__table__.update().where(Certificate.id == -1).values(status="valid"),
        Order.__table__.update().where(Order.id == -1).values(status="completed"),
    ):
        with pytest.raises(StatementError) as caught, ra.sessions() as session, session.begin():
            session.execute(statement)
        assert isinstance(caught.value.orig, LookupError)


def test_an_enum_column_needs_members_spelled_as_their_values():
    from enum import StrEnum

    class Shouting(StrEnum):
        VALID = "valid"

    with pytest.raises(ValueError, match="spelled as its value"):
        enum_column(Shouting, "shouting", 8)
    for members in (CertificateStatus, OrderStatus, ValidationLevel):
        assert all(member.name == member.value for member in members)


def test_a_schema_change_that_breaks_a_reference_is_rolled_back_on_sqlite(tmp_path):
    engine = create_database_engine(f"sqlite:///{tmp_path / 'references.db'}")
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
            connection.exec_driver_sql("CREATE TABLE child (id INTEGER PRIMARY KEY, "
                                       "parent_id INTEGER REFERENCES parent (id))")
            connection.exec_driver_sql("INSERT INTO parent VALUES (1)")
            connection.exec_driver_sql("INSERT INTO child VALUES (1, 1)")
        with engine.connect() as connection:
            with pytest.raises(BrokenReferences, match="child"), schema_change(connection):
                connection.exec_driver_sql("DELETE FROM parent")  # allowed while foreign keys are off
            assert connection.exec_driver_sql("SELECT COUNT(*) FROM parent").scalar() == 1
            connection.rollback()
            with schema_change(connection):  # a rebuild that keeps the references commits
                connection.exec_driver_sql("CREATE TABLE parent_new (id INTEGER PRIMARY KEY, note TEXT)")
                connection.exec_driver_sql("INSERT INTO parent_new (id) SELECT id FROM parent")
                connection.exec_driver_sql("DROP TABLE parent")
                connection.exec_driver_sql("ALTER TABLE parent_new RENAME TO parent")
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1  # back on
            connection.rollback()
    finally:
        engine.dispose()


def test_the_migrated_schema_is_the_models(ra):
    """Alembic's own comparison of the migrated database with the models finds nothing to add,
    drop or change (tables, columns, indexes, unique constraints, foreign keys): a model changed
    without its migration, or a migration without its model, fails here."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from soap_service.storage.models import Base

    with ra.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []
