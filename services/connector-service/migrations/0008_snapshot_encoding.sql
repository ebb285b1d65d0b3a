-- A snapshot's catalog is stored compressed: its JSON text is written
-- straight into a compressor, so the service never holds the whole text
-- (45 MB at 400k columns; a tenth of that compressed), and readers parse it
-- through a decompressing reader. `catalog_encoding` names the form:
-- NULL: the JSON text in `catalog` (every snapshot written before this
-- migration; they stay readable as they are); 'zlib': the JSON text in the
-- zlib format (RFC 1950) in `catalog_bytes`, with `catalog` empty.
-- BYTEA is PostgreSQL's binary type; SQLite keeps a blob in it as a blob.
ALTER TABLE catalog_snapshots ADD COLUMN catalog_encoding TEXT;
ALTER TABLE catalog_snapshots ADD COLUMN catalog_bytes BYTEA;
