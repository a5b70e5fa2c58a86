// Package docs holds no code: its tests keep the reference pages under
// docs/ in step with the code — every setting of every service
// (docs/configuration.md, generated), every metric the services register,
// every column of every table, every alert's real duration and the
// monitor API's response bodies.
package docs
