// Placeholder until the model management routes land.
#include "server/routes.h"

namespace flatline::server {
void register_model_admin_routes(Router&, ServerContext&) {}
}  // namespace flatline::server
