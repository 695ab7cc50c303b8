SELECT uproot.declare_relation('ci_builds_project', 'ci_builds', array['project_id'], 'projects', array['id'], 'async cascade');
SELECT name FROM uproot.create_drain_job('ci-builds-drain', 'ci_builds_project', batch_size => 2);
SELECT cron.schedule('uproot-drain', '* * * * *', $$CALL uproot.run_job('ci-builds-drain')$$);
