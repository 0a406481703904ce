-- Visits of the hello page.
create table visits (
    id bigserial primary key,
    path text not null,
    seen_at timestamptz not null default now()
);
