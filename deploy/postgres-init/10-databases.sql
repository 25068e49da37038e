-- One database per service, owned by POSTGRES_USER. The postgres image runs this once, when it
-- initialises an empty data volume; `commonroom migrate` then creates the tables.
-- lecturers is not built yet; its database is made now so that an existing volume has it later.
CREATE DATABASE registry;
CREATE DATABASE booking;
CREATE DATABASE lecturers;
