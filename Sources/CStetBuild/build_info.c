#include "stet_build.h"

#ifndef STET_BUILD_COMMIT
#define STET_BUILD_COMMIT "unknown"
#endif

#ifndef STET_BUILD_DATE
#define STET_BUILD_DATE "unknown"
#endif

const char *stet_build_commit(void) { return STET_BUILD_COMMIT; }

const char *stet_build_date(void) { return STET_BUILD_DATE; }
