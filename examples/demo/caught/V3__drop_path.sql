-- A contract step shipped as if it were an expand: the running version still reads
-- visits.path, so dropping it breaks the old and new versions' co-existence.
alter table visits drop column path;
