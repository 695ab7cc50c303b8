-- pg_uproot demo schema, loaded by scripts/demo.sh.
--
--   customers <- orders <- items <- events      plain foreign keys (NO ACTION), each one indexed
--   customers <- comments <- comments           a tree of replies: comments.parent_id is a self-reference
--   orders    <- support_tickets                ON DELETE SET NULL: tickets outlive their order
--
-- None of these foreign keys cascades, so a plain `DELETE FROM customers WHERE id = 1` fails.

CREATE TABLE customers (
    id   int PRIMARY KEY,
    name text NOT NULL
);

CREATE TABLE orders (
    id          int PRIMARY KEY,
    customer_id int NOT NULL REFERENCES customers,
    placed_on   date NOT NULL
);
CREATE INDEX ON orders (customer_id);

CREATE TABLE items (
    id       int PRIMARY KEY,
    order_id int NOT NULL REFERENCES orders,
    sku      text NOT NULL,
    qty      int NOT NULL
);
CREATE INDEX ON items (order_id);

CREATE TABLE events (
    id      int PRIMARY KEY,
    item_id int NOT NULL REFERENCES items,
    kind    text NOT NULL
);
CREATE INDEX ON events (item_id);

CREATE TABLE comments (
    id          int PRIMARY KEY,
    customer_id int NOT NULL REFERENCES customers,
    parent_id   int REFERENCES comments,
    body        text NOT NULL
);
CREATE INDEX ON comments (customer_id);
CREATE INDEX ON comments (parent_id);

CREATE TABLE support_tickets (
    id       int PRIMARY KEY,
    order_id int REFERENCES orders ON DELETE SET NULL,
    subject  text NOT NULL
);
CREATE INDEX ON support_tickets (order_id);

-- Ada (customer 1) is the family the demo removes; Grace (customer 2) must survive untouched.
INSERT INTO customers VALUES
    (1, 'Ada'),
    (2, 'Grace');

INSERT INTO orders VALUES
    (10, 1, '2024-01-05'),
    (11, 1, '2024-02-11'),
    (20, 2, '2024-03-02');

INSERT INTO items VALUES
    (100, 10, 'lamp', 1),
    (101, 10, 'bulb', 4),
    (110, 11, 'desk', 1),
    (200, 20, 'chair', 2);

INSERT INTO events VALUES
    (1000, 100, 'shipped'),
    (1001, 100, 'delivered'),
    (1100, 110, 'shipped'),
    (2000, 200, 'shipped');

-- Comment 2 is Grace's reply inside Ada's thread: it hangs off comment 1, so it belongs to Ada's
-- family too. Comment 4 is Grace's own thread.
INSERT INTO comments VALUES
    (1, 1, NULL, 'Is the lamp dimmable?'),
    (2, 2, 1,    'Mine is.'),
    (3, 1, 2,    'Thanks!'),
    (4, 2, NULL, 'Great chairs.');

-- Ticket 1 mentions Ada's order 10; purging Ada keeps the ticket and sets its order_id to NULL.
INSERT INTO support_tickets VALUES
    (1, 10, 'Lamp arrived scratched'),
    (2, 20, 'Chair wobbles');
