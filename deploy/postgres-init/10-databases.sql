-- One database per service, owned by POSTGRES_USER. The postgres image runs this once, when it
-- initialises an empty data volume; `commonroom migrate` then creates the tables. A volume made
-- before a service existed gets its database by hand (`createdb identity`).
CREATE DATABASE identity;
CREATE DATABASE registry;
CREATE DATABASE booking;
CREATE DATABASE lecturers;
CREATE DATABASE notify;
