export { startPostgres, type PostgresServer } from "./postgres.js";
