#ifndef STET_BUILD_H
#define STET_BUILD_H

/* What the build knew: the commit and the date `scripts/package` built from (Package.swift passes
   them from STET_BUILD_COMMIT and STET_BUILD_DATE, checked), or "unknown" for a plain build. */
const char *stet_build_commit(void);
const char *stet_build_date(void);

#endif
