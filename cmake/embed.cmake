# au_embed_migrations(TARGET DIR): compiles every DIR/NNNN_*.sql into a C array
# {version, name, sql} so the binary carries its own schema (migrations.h).
function(au_embed_migrations target dir)
  file(GLOB sqls CONFIGURE_DEPENDS ${dir}/[0-9][0-9][0-9][0-9]_*.sql)
  list(SORT sqls)
  set(out ${CMAKE_BINARY_DIR}/generated/migrations_embedded.c)
  string(REPLACE ";" "|" sqls_arg "${sqls}") # one shell word; embed_sql.cmake splits it again
  add_custom_command(
    OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -DOUT=${out} "-DSQLS=${sqls_arg}" -P ${CMAKE_SOURCE_DIR}/cmake/embed_sql.cmake
    DEPENDS ${sqls} ${CMAKE_SOURCE_DIR}/cmake/embed_sql.cmake
    COMMENT "Embedding SQL migrations"
    VERBATIM)
  add_library(${target} STATIC ${out})
  target_include_directories(${target} PUBLIC ${CMAKE_SOURCE_DIR}/server)
endfunction()
