-- One database per service, owned by POSTGRES_USER. The postgres image runs this once, when it
-- initialises an empty data volume; `commonroom migrate` then creates the tables.
CREATE DATABASE registry;
CREATE DATABASE booking;
CREATE DATABASE lecturers;
