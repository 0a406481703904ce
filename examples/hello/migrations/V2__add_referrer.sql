-- Expand: a nullable column; the running version (which does not know it) keeps working.
alter table visits add column referrer text;
