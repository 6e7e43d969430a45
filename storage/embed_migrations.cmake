# Generates a C++ source holding every migrations/NNNN_name.sql as a string,
# so the server binary carries its own schema. Run with -DSRC_DIR= -DOUT=.
file(GLOB files "${SRC_DIR}/[0-9][0-9][0-9][0-9]_*.sql")
list(SORT files)
set(body "")
foreach(f IN LISTS files)
  get_filename_component(name "${f}" NAME)
  string(SUBSTRING "${name}" 0 4 num)
  math(EXPR version "${num}")
  file(READ "${f}" sql)
  string(APPEND body "    {${version}, \"${name}\", R\"eds_sql(${sql})eds_sql\"},\n")
endforeach()
file(WRITE "${OUT}.tmp"
"// Generated from migrations/*.sql by storage/embed_migrations.cmake.\n"
"#include \"storage/migrator.hpp\"\n\n"
"namespace eds::storage {\n"
"const std::vector<Migration>& BuiltinMigrations() {\n"
"  static const std::vector<Migration> kAll = {\n${body}  };\n"
"  return kAll;\n}\n}  // namespace eds::storage\n")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
