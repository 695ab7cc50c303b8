CREATE EXTENSION pg_cron;
CREATE EXTENSION pg_uproot;
SELECT * FROM uproot.prepare_archive('orders');
SELECT name FROM uproot.create_job('test-job', 'orders', $$placed < now() - interval '1 year'$$, batch_roots => 500);
SELECT cron.schedule('uproot-test', '* * * * *', $$CALL uproot.run_job('test-job')$$);
