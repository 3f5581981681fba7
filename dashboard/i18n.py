"""Every label of the dashboard, in Vietnamese (the default) and English, and locale formatting.

Metric names come from their declarations in devices/metrics.py (``MetricSpec.label``), and
device states from devices/health.py, not from here. Numbers and dates go through babel so each
language gets its own separators and date order; times are shown in the province's zone (ICT,
UTC+7).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

import pandas as pd
import streamlit as st
from babel.dates import format_datetime, get_timezone
from babel.numbers import format_decimal, format_percent

from devices.clock import LOCAL_ZONE
from devices.health import STATE_LABELS
from devices.kinds import Kind
from devices.metrics import metric

LANGS: dict[str, str] = {"vi": "Tiếng Việt", "en": "English"}
DEFAULT_LANG = "vi"
_LOCALE = {"vi": "vi_VN", "en": "en_GB"}
ZONE_NAME = LOCAL_ZONE.key  # charts show local wall time, as operators read clocks
ZONE = get_timezone(ZONE_NAME)

# key: (Vietnamese, English). ``{name}`` fields are filled by :func:`t`.
CATALOGUE: dict[str, tuple[str, str]] = {
    # shell
    "app.title": (
        "Trung tâm Điều hành thông minh · Bình Định",
        "Intelligent Operations Centre · Bình Định",
    ),
    "app.language": ("Ngôn ngữ", "Language"),
    "app.logout": ("Đăng xuất", "Log out"),
    "app.signed_in": ("{name} · vai trò: {role}", "{name} · role: {role}"),
    "app.no_database": (
        "Chưa đặt {env}: hãy chạy bảng điều khiển bằng `ioc up` hoặc `ioc dashboard`.",
        "{env} is not set: start the dashboard with `ioc up` or `ioc dashboard`.",
    ),
    "app.db_refused": (
        "Cơ sở dữ liệu từ chối: vai trò CSDL của bảng điều khiển không có quyền này.",
        "The database refused: the dashboard's database role lacks this privilege.",
    ),
    "page.map": ("Bản đồ trực tiếp", "Live map"),
    "page.alerts": ("Cảnh báo", "Alerts"),
    "page.device": ("Thiết bị", "Device"),
    "page.coverage": ("Báo cáo vùng phủ", "Coverage report"),
    "page.ingest": ("Thu nhận dữ liệu", "Ingest & rejects"),
    "page.users": ("Người dùng", "Users"),
    # login
    "login.title": ("Đăng nhập", "Log in"),
    "login.username": ("Tên đăng nhập", "Username"),
    "login.password": ("Mật khẩu", "Password"),
    "login.submit": ("Đăng nhập", "Log in"),
    "login.failed": ("Sai tên đăng nhập hoặc mật khẩu.", "Wrong username or password."),
    "login.locked": (
        "Quá nhiều lần đăng nhập sai: tạm khóa, hãy thử lại sau hoặc nhờ quản trị viên mở khóa.",
        "Too many failed logins: locked for now. Try again later or ask an administrator.",
    ),
    "login.expired": (
        "Phiên làm việc đã hết hạn, hãy đăng nhập lại.",
        "Your session has expired; please log in again.",
    ),
    "login.no_users": (
        "Chưa có người dùng nào: tạo một tài khoản bằng `ioc users add TÊN --role admin`.",
        "No users yet: create one with `ioc users add NAME --role admin`.",
    ),
    "role.viewer": ("xem", "viewer"),
    "role.operator": ("điều hành", "operator"),
    "role.admin": ("quản trị", "admin"),
    # kinds and states
    "kind.bts": ("Trạm BTS", "BTS"),
    "kind.camera": ("Camera", "Cameras"),
    "kind.broadband": ("Nút băng rộng (OLT)", "Broadband nodes (OLT)"),
    **{f"state.{s}": label for s, label in STATE_LABELS.items()},  # declared with the states
    "severity.critical": ("nghiêm trọng", "critical"),
    "severity.major": ("lớn", "major"),
    "severity.minor": ("nhỏ", "minor"),
    "severity.info": ("thông tin", "info"),
    "alert_state.open": ("đang mở", "open"),
    "alert_state.acknowledged": ("đã xác nhận", "acknowledged"),
    "alert_state.resolved": ("đã xử lý", "resolved"),
    # headline strip
    "head.online_of": ("{kind} hoạt động (trên {total})", "{kind} online (of {total})"),
    "head.not_online": ("{n} không hoạt động", "{n} not online"),
    "head.alerts": ("Cảnh báo đang mở", "Open alerts"),
    "head.alerts_detail": (
        "{critical} nghiêm trọng · {major} lớn · {minor} nhỏ",
        "{critical} critical · {major} major · {minor} minor",
    ),
    "head.dead_spots": ("Thôn lõm sóng", "Villages without signal"),
    "head.dead_spots_detail": ("{population} người bị ảnh hưởng", "{population} people affected"),
    "head.centres": ("Phủ sóng trung tâm xã", "Commune centres covered"),
    "head.population": ("Phủ sóng dân số", "Population covered"),
    "head.unknown": (
        "{share} dựa vào trạm chưa từng báo cáo",
        "{share} rests on towers never heard from",
    ),
    "head.ingest": ("Thu nhận (tin/giây)", "Ingest (msg/s)"),
    "head.ingest_detail": (
        "trễ {lag} s · {rejects} bị loại/giờ",
        "lag {lag} s · {rejects} rejects/h",
    ),
    "head.no_coverage": ("chưa có tính toán vùng phủ", "no coverage computed yet"),
    # map
    "map.colour_by": ("Tô màu trạm theo", "Colour towers by"),
    "map.by_state": ("trạng thái", "state"),
    "map.by_operator": ("nhà mạng", "operator"),
    "map.layers": ("Lớp bản đồ", "Layers"),
    "map.coverage_layer": ("Vùng phủ sóng", "Coverage"),
    "map.any_operator": ("bất kỳ nhà mạng", "any operator"),
    "map.none": ("tắt", "off"),
    "map.legend_villages": (
        "◯ thôn lõm sóng (kích thước theo dân số)",
        "◯ village without signal (sized by population)",
    ),
    "map.synthetic": (
        "Vị trí thôn, đường và ranh giới huyện là dữ liệu tổng hợp (xem seeds/data/README.md).",
        "Village, road and district positions are synthetic (see seeds/data/README.md).",
    ),
    "map.updated": ("Cập nhật {when}", "Updated {when}"),
    "map.focus": ("Đang xem: {subject}", "Focused on: {subject}"),
    # the national map (several provinces)
    "nat.country": ("Việt Nam", "Vietnam"),
    "nat.pick": ("Tỉnh", "Province"),
    "nat.all": ("Tất cả các tỉnh", "All provinces"),
    "nat.table": ("Số liệu theo tỉnh", "Figures by province"),
    "nat.tip_sites": (
        "Trạm BTS hoạt động {online}/{total} · {offline} mất kết nối",
        "BTS online {online}/{total} · {offline} offline",
    ),
    "nat.tip_dead": (
        "{n} thôn lõm sóng · {people} người",
        "{n} villages without signal · {people} people",
    ),
    "nat.tip_alerts": (
        "Cảnh báo mở: {critical} nghiêm trọng, {major} lớn",
        "Open alerts: {critical} critical, {major} major",
    ),
    "nat.state": ("Tình trạng", "State"),
    # No emoji: a wall PC's browser may have no colour emoji font.
    "nat.state_red": ("đỏ · lõm sóng / cảnh báo nghiêm trọng", "red · no signal / critical alert"),
    "nat.state_amber": ("vàng · thiết bị mất kết nối", "amber · devices offline"),
    "nat.state_green": ("xanh · bình thường", "green · normal"),
    "nat.province": ("Tỉnh", "Province"),
    "nat.sites": ("Trạm BTS", "BTS sites"),
    "nat.online": ("Hoạt động", "Online"),
    "nat.offline": ("Mất kết nối", "Offline"),
    "nat.unknown": ("Chưa rõ", "Unknown"),
    "nat.cameras_offline": ("Camera mất kết nối", "Cameras offline"),
    "nat.broadband_offline": ("Băng rộng mất kết nối", "Broadband offline"),
    "nat.dead": ("Thôn lõm sóng", "Villages without signal"),
    "nat.people": ("Dân bị ảnh hưởng", "People affected"),
    "nat.critical": ("Cảnh báo nghiêm trọng", "Critical alerts"),
    "nat.major": ("Cảnh báo lớn", "Major alerts"),
    "nat.legend": (
        "Mỗi tỉnh tô theo tình trạng (đỏ, vàng, xanh); bản đồ chỉ vẽ thiết bị hỏng và thôn lõm"
        " sóng. Chọn một tỉnh (hoặc bấm vào tỉnh) để xem chi tiết.",
        "Each province is filled by its state (red, amber, green); the map draws only failed"
        " devices and villages without signal. Pick a province (or click it) for its detail.",
    ),
    "tip.state": ("trạng thái", "state"),
    "tip.last_seen": ("lần cuối", "last seen"),
    "tip.population": ("dân số", "population"),
    # alerts page
    "alerts.state": ("Tình trạng", "State"),
    "alerts.severity": ("Mức độ", "Severity"),
    "alerts.district": ("Huyện", "District"),
    "alerts.kind": ("Loại đối tượng", "Subject kind"),
    "alerts.all": ("tất cả", "all"),
    "subject.village": ("Thôn", "Village"),
    "subject.district": ("Huyện", "District"),
    "subject.incident": ("Sự cố", "Incident"),
    "alerts.incidents": ("Sự cố đang mở ({n})", "Open incidents ({n})"),
    "alerts.no_incidents": ("Không có sự cố nào đang mở.", "No open incidents."),
    "alerts.incident_caption": (
        "Cảnh báo được gộp theo nguyên nhân và huyện; người trực chỉ nhận một thông báo cho mỗi"
        " sự cố và mỗi lần số cảnh báo thay đổi.",
        "Alerts grouped by cause and district; people are told once per incident and once per"
        " change of its number of alerts.",
    ),
    "alerts.villages_dark": ("Thôn mất sóng", "Villages dark"),
    "alerts.people_affected": ("Người bị ảnh hưởng", "People affected"),
    "alerts.member_alerts": ("Cảnh báo thành phần", "Member alerts"),
    "alerts.worst_villages": ("Thôn bị ảnh hưởng nặng nhất: {names}", "Worst villages: {names}"),
    "alerts.by_rule": ("Theo loại cảnh báo", "By rule"),
    "alerts.count": ("Số lượng", "Count"),
    "alerts.rule": ("Loại cảnh báo", "Rule"),
    "alerts.inhibited": ("Hệ quả (gộp vào nguyên nhân)", "Symptom (under its cause)"),
    "alerts.yes": ("có", "yes"),
    "alerts.open_incident_alert": ("Mở cảnh báo của sự cố", "Open the incident's alert"),
    "alerts.none": ("Không có cảnh báo nào khớp bộ lọc.", "No alerts match the filters."),
    "alerts.opened": ("Mở lúc", "Opened"),
    "alerts.subject": ("Đối tượng", "Subject"),
    "alerts.summary": ("Nội dung", "Summary"),
    "alerts.pick": ("Chọn cảnh báo", "Select an alert"),
    "alerts.history": ("Lịch sử", "History"),
    "alerts.ack": ("Xác nhận", "Acknowledge"),
    "alerts.ack_comment": ("Ghi chú", "Comment"),
    "alerts.acked": ("Đã xác nhận cảnh báo #{id}.", "Alert #{id} acknowledged."),
    "alerts.silence": ("Tạm ẩn thông báo", "Silence"),
    "alerts.silence_hours": ("Số giờ", "Hours"),
    "alerts.silenced": (
        "Đã tạm ẩn thông báo của {subject} đến {until}.",
        "Notifications for {subject} silenced until {until}.",
    ),
    "alerts.refused": ("Từ chối: {reason}", "Refused: {reason}"),
    "alerts.delivery": ("Gửi cảnh báo", "Delivery"),
    "alerts.delivery_dead": (
        "Gửi cảnh báo: {dead} lần gửi đã bỏ (không gửi lại)",
        "Delivery: {dead} given up (never retried)",
    ),
    "alerts.channel": ("Kênh", "Channel"),
    "alerts.pending": ("Đang chờ", "Pending"),
    "alerts.failing": ("Đang lỗi", "Failing"),
    "alerts.dead": ("Đã bỏ", "Given up"),
    "alerts.oldest": ("Cũ nhất", "Oldest"),
    "alerts.last_error": ("Lỗi gần nhất", "Latest error"),
    "alerts.dead_letters": ("Lần gửi đã bỏ gần nhất", "Latest given up"),
    "alerts.attempts": ("Số lần thử", "Attempts"),
    "alerts.nothing_waiting": ("Không có gì chờ gửi.", "Nothing waiting."),
    "alerts.viewer_note": (
        "Vai trò xem không được xác nhận hay tạm ẩn cảnh báo.",
        "The viewer role cannot acknowledge or silence alerts.",
    ),
    "alerts.details": ("Chi tiết", "Details"),
    "alerts.event": ("Sự kiện", "Event"),
    "alerts.actor": ("Người thực hiện", "By"),
    "event.opened": ("mở", "opened"),
    "event.updated": ("cập nhật", "updated"),
    "event.flapping": ("chập chờn", "flapping"),
    "event.acknowledged": ("xác nhận", "acknowledged"),
    "event.resolved": ("đã xử lý", "resolved"),
    "event.unsilenced": ("hết tạm ẩn", "unsilenced"),
    "alerts.on_map": ("Xem trên bản đồ", "Show on map"),
    "alerts.to_device": ("Trang thiết bị", "Device page"),
    "alerts.unavailable": (
        "Chưa có bộ cảnh báo (store/alerts.py).",
        "The alert engine is not installed (store/alerts.py).",
    ),
    # device page
    "device.search": ("Tìm theo mã hoặc tên", "Search by id or name"),
    "device.none": ("Không tìm thấy thiết bị.", "No device found."),
    "device.pick": ("Thiết bị", "Device"),
    "device.meta": ("Thông tin", "Details"),
    "device.operator": ("Nhà mạng", "Operator"),
    "device.position": ("Vị trí", "Position"),
    "device.district": ("Huyện", "District"),
    "device.sectors": ("Sector", "Sectors"),
    "device.state": ("Trạng thái", "State"),
    "device.since": ("từ {when}", "since {when}"),
    "device.last_seen": ("Lần cuối nhận tin", "Last seen"),
    "device.range": ("Khoảng thời gian", "Range"),
    "device.range_6h": ("6 giờ", "6 hours"),
    "device.range_24h": ("24 giờ", "24 hours"),
    "device.range_7d": ("7 ngày", "7 days"),
    "device.range_30d": ("30 ngày", "30 days"),
    "device.no_readings": ("Không có số liệu trong khoảng này.", "No readings in this range."),
    "device.status_history": ("Lịch sử trạng thái", "Status history"),
    "device.alerts": ("Cảnh báo của thiết bị", "Alerts of this device"),
    "device.villages": (
        "Thôn phụ thuộc trạm này (N-1)",
        "Villages that depend on this tower (N-1)",
    ),
    "device.critical": (
        "Trạm then chốt (N-1): mất trạm này thì {n} thôn ({population} người) mất hẳn sóng.",
        "N-1 critical: without this tower {n} villages ({population} people) have no signal.",
    ),
    "device.not_critical": (
        "Không then chốt (N-1): không thôn nào chỉ phụ thuộc trạm này.",
        "Not N-1 critical: no village depends on this tower alone.",
    ),
    "device.operator_loss": (
        "Mất trạm này thì {n} thôn ({population} người) mất sóng {operator}.",
        "Without this tower {n} villages ({population} people) lose {operator}.",
    ),
    "device.time": ("Thời điểm", "Time"),
    "device.reason": ("Lý do", "Reason"),
    # coverage report
    "cov.district": ("Huyện", "District"),
    "cov.commune": ("Xã/phường", "Commune"),
    "cov.villages": ("Số thôn", "Villages"),
    "cov.dead_spots": ("Thôn lõm sóng", "Dead spots"),
    "cov.population": ("Dân số", "Population"),
    "cov.without": ("Dân số không có sóng", "Population without signal"),
    "cov.without_op": ("Không có sóng {operator}", "Without {operator}"),
    "cov.centre": ("Trung tâm xã có sóng", "Commune centre covered"),
    "cov.by_district": ("Theo huyện", "By district"),
    "cov.by_commune": ("Theo xã", "By commune"),
    "cov.critical": ("Trạm then chốt N-1", "N-1 critical towers"),
    "cov.n1_population_all": ("Dân số mất hẳn sóng", "People left without any signal"),
    "cov.n1_villages_all": ("Số thôn mất hẳn sóng", "Villages left without any signal"),
    "cov.n1_population_op": ("Dân số mất sóng nhà mạng này", "People losing this operator"),
    "cov.n1_villages_op": ("Số thôn mất sóng nhà mạng này", "Villages losing this operator"),
    "cov.summary": (
        "{dead} thôn lõm sóng, {population} người không có sóng; {centres} trung tâm xã có sóng.",
        "{dead} villages without signal ({population} people); commune centres covered: {centres}.",
    ),
    "cov.export_csv": ("Tải CSV", "Download CSV"),
    "cov.export_xlsx": ("Tải XLSX", "Download XLSX"),
    "cov.unavailable": (
        "Chưa có tính toán vùng phủ (store/coverage.py).",
        "No coverage engine yet (store/coverage.py).",
    ),
    # ingest page
    "ingest.throughput": ("Lưu lượng (tin/phút)", "Throughput (messages/minute)"),
    "ingest.latency": ("Độ trễ (giây, trung bình/phút)", "Latency (seconds, mean per minute)"),
    "ingest.rejects": ("Tin bị loại theo lý do (24 giờ)", "Rejects by reason (24 hours)"),
    "ingest.samples": ("Mẫu tin bị loại", "Sample rejected payloads"),
    "ingest.reason": ("Lý do", "Reason"),
    "ingest.count": ("Số lượng", "Count"),
    "ingest.no_rejects": ("Không có tin bị loại.", "No rejects."),
    "ingest.window": ("30 phút gần nhất", "last 30 minutes"),
    # users page
    "users.admin_only": ("Chỉ quản trị viên.", "Administrators only."),
    "users.add": ("Thêm người dùng", "Add a user"),
    "users.name": ("Tên hiển thị", "Display name"),
    "users.role": ("Vai trò", "Role"),
    "users.saved": ("Đã lưu người dùng {name}.", "User {name} saved."),
    "users.audit": ("Nhật ký thao tác", "Audit log"),
    "users.audit_filter": ("Lọc theo người dùng", "Filter by user"),
    "users.audit_all": ("Tất cả", "Everyone"),
    "users.provinces": ("Tỉnh", "Provinces"),
    "users.national": ("Toàn quốc", "Whole country"),
    "users.provinces_help": (
        "Để trống: toàn quốc (chỉ quản trị viên toàn quốc mới thêm được).",
        "Left empty: the whole country (only a national admin may add one).",
    ),
    "audit.at": ("Thời điểm", "When"),
    "audit.actor": ("Người thực hiện", "Who"),
    "audit.address": ("Địa chỉ", "Address"),
    "audit.event": ("Sự kiện", "Event"),
    "audit.subject": ("Đối tượng", "Subject"),
    "audit.detail": ("Chi tiết", "Detail"),
    # --- coverage raster on the map (issue 17 part 2) ---
    "raster.legend": ("Mức thu tốt nhất (3G/4G, dBm)", "Best received level (3G/4G, dBm)"),
    "raster.good": ("tốt ≥ {a}", "good ≥ {a}"),
    "raster.fair": ("khá {b} … {a}", "fair {b} … {a}"),
    "raster.poor": ("yếu {b} … {a}", "poor {b} … {a}"),
    "raster.none": ("không có sóng", "no signal"),
    "raster.rings": ("vòng: thôn mất sóng", "rings: dead-spot villages"),
    "raster.computed": ("tính lúc {when}", "computed {when}"),
    "raster.pending": (
        "Dịch vụ vùng phủ chưa tính bản đồ sóng.",
        "The coverage service has not computed the raster yet.",
    ),
    # --- wall screen, locale (issue 17 parts 6, 7) ---
    "page.wall": ("Màn hình tường", "Video wall"),
    "wall.open_alerts": ("Cảnh báo đang mở ({n})", "Open alerts ({n})"),
    "wall.no_alerts": ("Không có cảnh báo nào đang mở.", "No open alerts."),
    "wall.more": ("… và {n} cảnh báo khác", "… and {n} more"),
    # --- broadband and camera pages (issue 17 part 4) ---
    "page.broadband": ("Băng rộng cáp quang", "Fibre broadband"),
    "page.cameras": ("Camera giám sát", "Cameras"),
    "bb.households": ("Số hộ", "Households"),
    "bb.households_passed": ("Hộ được phủ cáp quang", "Households passed"),
    "bb.of_households": ("{share} trên {total} hộ", "{share} of {total} households"),
    "bb.households_n": ("{n} hộ", "{n} households"),
    "bb.share": ("Tỷ lệ hộ được phủ", "Share passed"),
    "bb.communes": ("Số xã", "Communes"),
    "bb.communes_fibre": ("Xã có cáp quang", "Communes with fibre"),
    "bb.n_of": ("{n}/{total}", "{n} of {total}"),
    "bb.households_cut": ("Hộ đang mất cáp quang", "Households cut off now"),
    "bb.faults": ("OLT đang sự cố ({n})", "OLTs at fault ({n})"),
    "bb.no_faults": ("Không OLT nào đang sự cố.", "No OLT is at fault."),
    "bb.faults_caption": (
        "OLT mất kết nối hoặc mất đường lên: các hộ nó phục vụ mất dịch vụ, và các trạm BTS"
        " trong những xã đó mất truyền dẫn qua nó.",
        "An OLT dark or with its uplink down: the households it serves lose service, and the BTS"
        " in those communes lose the backhaul that rides on it.",
    ),
    "bb.olt": ("OLT", "OLT"),
    "bb.communes_served": ("Các xã phục vụ", "Communes served"),
    "bb.bts_backhaul": ("Số trạm BTS truyền dẫn qua OLT", "BTS backhauled through it"),
    "bb.bts_ids": ("Các trạm BTS", "BTS"),
    "bb.without_fibre": ("Xã chưa có cáp quang", "Communes without fibre"),
    "bb.all_fibre": ("Mọi xã đều có cáp quang.", "Every commune has fibre."),
    "bb.by_olt": ("Theo OLT", "By OLT"),
    "cam.cameras": ("Số camera", "Cameras"),
    "cam.camera": ("Camera", "Camera"),
    "cam.online": ("Hoạt động", "Online"),
    "cam.recording": ("Đang ghi hình", "Recording"),
    "cam.reporting": ("Có số liệu", "Reporting"),
    "cam.of_reporting": ("trên {n} camera có số liệu", "of {n} reporting"),
    "cam.stream": ("Luồng video", "Video stream"),
    "cam.storage_free": ("Bộ nhớ còn trống", "Storage free"),
    "cam.storage_median": ("Bộ nhớ còn trống (trung vị)", "Storage free (median)"),
    "cam.storage_min": ("Bộ nhớ còn trống (thấp nhất)", "Storage free (lowest)"),
    "cam.storage_low": ("Bộ nhớ sắp đầy", "Storage nearly full"),
    "cam.tamper": ("Bị can thiệp/che khuất", "Tampered with"),
    "cam.faults": ("Camera đang sự cố ({n})", "Cameras at fault ({n})"),
    "cam.no_faults": ("Không camera nào đang sự cố.", "No camera is at fault."),
    "cam.yes": ("có", "yes"),
    # --- click-through, deep links, village detail (issue 17 part 3) ---
    "page.village": ("Thôn", "Village"),
    "alerts.link_unknown": ("Không có cảnh báo #{alert}.", "There is no alert #{alert}."),
    "device.villages_touched": (
        "Thôn mà việc mất hay có lại trạm này đã làm đổi vùng phủ ({n}):",
        "Villages whose coverage changed when this tower went or came back ({n}):",
    ),
    "device.village_line": (
        "{name} · {commune} · {population} người · {event} {when}",
        "{name} · {commune} · {population} people · {event} {when}",
    ),
    "village.pick": ("Chọn thôn", "Select a village"),
    "village.unknown": ("Không có thôn {village}.", "There is no village {village}."),
    "village.commune": ("Xã", "Commune"),
    "village.district": ("Huyện", "District"),
    "village.population": ("Dân số", "Population"),
    "village.position": ("Vị trí", "Position"),
    "village.on_map": ("Xem trên bản đồ", "Show on the map"),
    "village.coverage": ("Vùng phủ hiện tại", "Coverage now"),
    "village.not_judged": (
        "Dịch vụ vùng phủ chưa đánh giá thôn này.",
        "The coverage service has not judged this village yet.",
    ),
    "village.dead_since": ("Mất sóng mọi nhà mạng từ {since}.", "No signal at all since {since}."),
    "village.covered_since": ("Có sóng; thay đổi gần nhất {since}.", "Covered; changed {since}."),
    "village.operator": ("Nhà mạng", "Operator"),
    "village.covered": ("Có sóng 3G/4G", "3G/4G signal"),
    "village.level": ("Mức thu (dBm)", "Level (dBm)"),
    "village.measured": ("Theo đo thực tế", "From measurements"),
    "village.updated": ("Tính lúc {when}", "Computed {when}"),
    "village.timeline": ("Diễn biến vùng phủ", "Coverage timeline"),
    "village.no_events": ("Chưa có thay đổi nào được ghi.", "No change recorded yet."),
    "village.event_lost": (
        "{when}: mất sóng ({lost}); còn: {now}",
        "{when}: signal lost ({lost}); left: {now}",
    ),
    "village.event_restored": ("{when}: có sóng lại ({now})", "{when}: signal back ({now})"),
    "village.event_degraded": (
        "{when}: mất nhà mạng {lost}; còn: {now}",
        "{when}: lost {lost}; left: {now}",
    ),
    "village.event_improved": ("{when}: thêm nhà mạng; nay: {now}", "{when}: gained; now: {now}"),
    "village.kind_lost": ("mất sóng", "lost signal"),
    "village.kind_restored": ("có sóng lại", "signal back"),
    "village.kind_degraded": ("mất một nhà mạng", "lost an operator"),
    "village.kind_improved": ("thêm nhà mạng", "gained an operator"),
    "village.sites": ("Trạm gần nhất", "Nearest towers"),
    "village.sites_note": (
        "Hai trạm gần nhất của mỗi nhà mạng; trạm gây ra thay đổi nằm dưới từng sự kiện.",
        "The two nearest towers of each operator; towers that caused a change are under it.",
    ),
    "village.site": (
        "{device} · {operator} · {state} · {km} km",
        "{device} · {operator} · {state} · {km} km",
    ),
    "cam.no": ("không", "no"),
    # --- which villages a tower serves, which towers serve a village (issue 17 part 3) ---
    "device.serves": ("Thôn trạm này đang phục vụ ({n})", "Villages this tower serves now ({n})"),
    "device.serves_note": (
        "Theo sóng dự báo của các trạm đang phát, cập nhật cùng chỉ số N-1; thôn chỉ trạm này"
        " phủ sóng đứng đầu.",
        "From the predicted signal of the towers on air, updated with the N-1 figures; villages"
        " only this tower covers come first.",
    ),
    "device.serves_none": (
        "Theo dự báo, trạm này hiện không phủ sóng 3G/4G cho thôn nào.",
        "By the prediction, this tower gives no village 3G/4G signal now.",
    ),
    "device.serve_line": (
        "{name} · {commune} · {population} người · {role}",
        "{name} · {commune} · {population} people · {role}",
    ),
    "device.serve_only": ("trạm duy nhất có sóng ở đây", "the only tower with signal here"),
    "device.serve_only_operator": ("trạm {operator} duy nhất", "the only {operator} tower"),
    "device.serve_shared": ("{n} trạm {operator} ở đây", "{operator} towers here: {n}"),
    "device.serve_more": ("… và {n} thôn nữa", "… and {n} more villages"),
    "village.serving": ("Trạm đang phục vụ", "Towers serving it"),
    "village.serving_note": (
        "Các trạm đang phát có sóng dự báo tại thôn đạt ngưỡng 3G/4G, theo nhà mạng; liệt kê"
        " {shown} trạm gần nhất.",
        "Towers on air whose predicted signal here clears the 3G/4G threshold, by operator; the"
        " {shown} nearest listed.",
    ),
    "village.serving_operator": ("{operator} · {n} trạm", "{operator} · towers: {n}"),
    "village.serving_none": ("{operator}: không trạm nào", "{operator}: no tower"),
    "village.serving_site": (
        "{device} · {state} · {km} km",
        "{device} · {state} · {km} km",
    ),
    # battery runway (issue 18)
    "runway.loses_all": (
        "mất toàn bộ sóng di động lúc khoảng {at} ({left})",
        "loses all mobile signal at about {at} ({left})",
    ),
    "runway.loses_op": (
        "mất sóng {operator} lúc khoảng {at} ({left})",
        "loses {operator} at about {at} ({left})",
    ),
    "runway.loses_all_unknown": (
        "sẽ mất toàn bộ sóng di động khi các trạm hết pin: chưa dự báo được giờ",
        "will lose all mobile signal when its towers' batteries run out: time unknown",
    ),
    "runway.loses_op_unknown": (
        "sẽ mất sóng {operator} khi các trạm hết pin: chưa dự báo được giờ",
        "will lose {operator} when its towers' batteries run out: time unknown",
    ),
    "runway.in": ("còn ~{span}", "in ~{span}"),
    "runway.minutes": ("{n} phút", "{n} min"),
    "runway.hours": ("{n} giờ", "{n} h"),
    "runway.due": ("đã đến giờ dự báo", "due now"),
    "runway.people": ("{n} người", "{n} people"),
    "runway.sites": ("trạm đang chạy pin: {sites}", "sites on battery: {sites}"),
    "runway.and_more": ("và {n} trạm nữa", "and {n} more"),
    "runway.and_more_villages": ("… và {n} thôn nữa", "… and {n} more villages"),
    "runway.band_soon": ("dưới 30 phút", "under 30 min"),
    "runway.band_hour": ("30–60 phút", "30–60 min"),
    "runway.band_later": ("sau 60 phút", "over 60 min"),
    "runway.band_unknown": ("chưa rõ", "unknown"),
    "runway.legend": ("Thôn sắp mất sóng, còn", "Villages about to go dark, time left"),
    "runway.computed": ("dự báo lúc {when}", "forecast {when}"),
    "runway.next": ("Sắp mất sóng tiếp theo ({n} thôn)", "Next to go dark ({n} villages)"),
    "runway.next_line": (
        "{name} · {commune}: {loses} · {people} người",
        "{name} · {commune}: {loses} · {people} people",
    ),
    "runway.none": (
        "Không thôn nào có mọi trạm phục vụ đang chạy pin.",
        "No village has every tower serving it on battery.",
    ),
    "runway.panel": ("Vùng phủ có nguy cơ ({n} thôn)", "Coverage at risk ({n} villages)"),
    "runway.panel_note": (
        "Thôn có mọi trạm phục vụ đang chạy pin, sớm nhất trước; giờ mất sóng dự báo theo tốc độ"
        " xả pin của từng trạm, kèm khoảng sai số.",
        "Villages every tower serving which is on battery, soonest first; the time is forecast"
        " from each tower's battery drain, with its uncertainty band.",
    ),
    "runway.operator": ("Nhà mạng", "Operator"),
    "runway.any": ("Mọi nhà mạng (mất hết sóng)", "Any (all signal)"),
    "runway.village": ("Thôn", "Village"),
    "runway.commune": ("Xã", "Commune"),
    "runway.district": ("Huyện", "District"),
    "runway.loses_at": ("Mất sóng lúc khoảng", "Loses signal at about"),
    "runway.left": ("Còn", "Time left"),
    "runway.urgency": ("Mức", "Band"),
    "runway.spread": ("Khoảng dự báo", "Forecast range"),
    "runway.population": ("Dân số", "Population"),
    "runway.sites_col": ("Trạm đang chạy pin", "Sites on battery"),
    "runway.device_title": ("Dự báo pin dự phòng", "Battery runway"),
    "runway.on_battery_since": ("Chạy pin từ {when}", "On battery since {when}"),
    "runway.battery": ("Pin", "Battery"),
    "runway.drain": ("Tốc độ xả", "Drain"),
    "runway.drain_value": ("{rate} %/giờ", "{rate} %/h"),
    "runway.method": ("Cách tính", "Method"),
    "runway.method_fit": ("khớp số đo", "fitted"),
    "runway.method_nominal": ("tốc độ danh định", "nominal rate"),
    "runway.method_unknown": ("chưa rõ", "unknown"),
    "runway.readings": ("{n} số đo pin", "{n} battery readings"),
    "runway.dark_at": ("Tắt lúc khoảng", "Dark at about"),
    "runway.device_dark": (
        "Nếu không có điện lưới lại, trạm tắt lúc khoảng {at} ({left}; khoảng {spread};"
        " mức: {urgency}).",
        "Unless mains returns, the tower goes dark at about {at} ({left}; range {spread};"
        " band: {urgency}).",
    ),
    "runway.device_unknown": (
        "Chưa dự báo được giờ tắt: trạm chưa gửi số đo pin nào.",
        "No forecast of when it goes dark: the tower has reported no battery reading.",
    ),
    "runway.wall": (
        "Sắp mất hết sóng trong {minutes} phút: {n} thôn, {people} người",
        "About to lose all signal within {minutes} min: {n} villages, {people} people",
    ),
    # availability report (issue 18)
    "page.availability": ("Khả dụng", "Availability"),
    "avail.intro": (
        "Số phút mất sóng và số người × phút mất sóng của mỗi thôn trong kỳ, tính từ lịch sử vùng"
        " phủ và các sự kiện mất sóng (không đọc dữ liệu đo thô).",
        "Minutes without signal and people × minutes lost per village over the period, from the"
        " coverage history and its outage events (no raw telemetry read).",
    ),
    "avail.from": ("Từ ngày", "From"),
    "avail.to": ("Đến hết ngày", "To (inclusive)"),
    "avail.by": ("Nhóm theo", "Group by"),
    "avail.by.district": ("Huyện", "District"),
    "avail.by.commune": ("Xã/phường", "Commune"),
    "avail.by.operator": ("Nhà mạng", "Operator"),
    "avail.period": (
        "Kỳ báo cáo: {start} → {end} (giờ Việt Nam); {outages} lần mất sóng, {lost} người × phút.",
        "Period: {start} → {end} (Vietnam time); {outages} outages, {lost} people × minutes.",
    ),
    "avail.groups": ("Tổng hợp", "Totals"),
    "avail.villages": ("Thôn tệ nhất", "Worst villages"),
    "avail.sites": ("Trạm gây mất sóng nhiều nhất", "Sites that caused most of it"),
    "avail.dead_spots": ("Vùng lõm (chưa từng có sóng)", "Dead spots (never had signal)"),
    "avail.rules": (
        "Thôn chưa từng có sóng đến hết kỳ là vùng lõm cố định: liệt kê riêng, không tính là mất"
        " sóng và không tính vào dân số dùng để tính tỷ lệ khả dụng. Người × phút của mỗi lần mất"
        " sóng chia đều cho các trạm nêu trong sự kiện gây ra nó.",
        "Villages that never had signal up to the period's end are structural dead spots: listed"
        " apart, not counted as outages nor in the population availability is reckoned on. Each"
        " outage's people × minutes are split evenly between the towers named by the event that"
        " began it.",
    ),
    "avail.col.group": ("Nhóm", "Group"),
    "avail.col.villages": ("Số thôn", "Villages"),
    "avail.col.population": ("Dân số", "Population"),
    "avail.col.villages_hit": ("Thôn bị mất sóng", "Villages hit"),
    "avail.col.outages": ("Số lần mất sóng", "Outages"),
    "avail.col.minutes": ("Phút mất sóng", "Minutes without signal"),
    "avail.col.people_minutes": ("Người × phút", "People × minutes"),
    "avail.col.availability_pct": ("Khả dụng (%)", "Availability (%)"),
    "avail.col.dead_spots": ("Thôn lõm sóng", "Dead spots"),
    "avail.col.dead_spot_population": ("Dân số vùng lõm", "Dead-spot population"),
    "avail.col.village_id": ("Mã thôn", "Village id"),
    "avail.col.village": ("Thôn", "Village"),
    "avail.col.commune": ("Xã/phường", "Commune"),
    "avail.col.district": ("Huyện", "District"),
    "avail.col.device_id": ("Trạm", "Site"),
    "avail.col.operator": ("Nhà mạng", "Operator"),
    "avail.none": ("Không có lần mất sóng nào trong kỳ.", "No outage in the period."),
    "avail.error.order": (
        "Ngày kết thúc phải sau ngày bắt đầu.",
        "The end date must come after the start date.",
    ),
    "avail.error.no_history": (
        "Chưa có lịch sử vùng phủ: dịch vụ vùng phủ ghi lịch sử này (ioc up có chạy).",
        "No coverage history yet: the coverage service writes it (ioc up runs it).",
    ),
    "avail.error.before_history": (
        "Kỳ này kết thúc trước khi lịch sử vùng phủ được lưu bắt đầu ({moment}).",
        "The period ends before the coverage history kept begins ({moment}).",
    ),
    "avail.error.future": ("Kỳ này bắt đầu trong tương lai.", "The period starts in the future."),
    # coverage at a past moment (issue 18)
    "history.look_back": ("Xem một thời điểm đã qua", "Look at a past moment"),
    "history.date": ("Ngày", "Date"),
    "history.time": ("Giờ (giờ Việt Nam)", "Time (Vietnam time)"),
    "history.back_to_live": ("Về trực tiếp", "Back to live"),
    "history.as_of": (
        "Lúc {when}: {villages} thôn mất sóng, {people} người; trạm ngừng hoạt động: {sites}."
        " Bản đồ không tự làm mới khi xem quá khứ.",
        "As of {when}: villages dark: {villages}, people: {people}; sites down: {sites}."
        " The map does not refresh itself while showing the past.",
    ),
    "history.none_kept": (
        "Chưa có lịch sử vùng phủ nào được lưu: dịch vụ vùng phủ ghi lịch sử này (ioc up có chạy).",
        "No coverage history kept yet: the coverage service writes it (ioc up runs it).",
    ),
    "history.before_kept": (
        "Không có lịch sử vùng phủ trước thời điểm này: bản ghi sớm nhất còn lưu là {earliest}.",
        "No coverage history before this moment: the earliest kept is {earliest}.",
    ),
    "history.future": (
        "Thời điểm này ở tương lai: hãy chọn một thời điểm đã qua, hoặc về trực tiếp.",
        "This moment is in the future: pick a past one, or go back to live.",
    ),
    "history.raster_hidden": (
        "Lớp phủ sóng đã ẩn: nó chỉ cho biết hiện tại. Trạng thái trạm và thôn mất sóng là của"
        " thời điểm đã chọn, theo lịch sử đã lưu.",
        "The coverage raster is hidden: it shows only the present. Device states and dark"
        " villages are those of the chosen moment, from the kept history.",
    ),
    "history.village": ("Thôn", "Village"),
    "history.lost": ("Nhà mạng đã mất", "Operators lost"),
    "history.sites": ("Trạm gây mất sóng (trạng thái lúc đó)", "Sites that caused it (state then)"),
    "history.outages": ("Các giai đoạn mất sóng", "Periods without signal"),
    "history.no_outages": (
        "Không có giai đoạn mất sóng nào trong lịch sử đã lưu.",
        "No period without signal in the kept history.",
    ),
    "history.all_operators": ("Mọi nhà mạng", "All operators"),
    "history.time_axis": ("Thời gian (giờ Việt Nam)", "Time (Vietnam time)"),
    "history.from": ("Từ", "From"),
    "history.to": ("Đến", "To"),
    "history.minutes": ("Số phút", "Minutes"),
    # siting advisor (issue 18)
    "advise.title": ("Nên xây trạm ở đâu", "Where to build"),
    "advise.note": (
        "Vị trí cho trạm mới cấu hình chuẩn ({site}) đưa nhiều người chưa có sóng lên mạng nhất:"
        " chọn lần lượt, mỗi lần tính lại phần còn thiếu; vị trí ứng viên cách nhau 1 km trong"
        " tỉnh.",
        "Where new sites of the standard configuration ({site}) would bring the most people"
        " without signal online: picked one at a time, the gain recomputed after each; candidate"
        " positions 1 km apart inside the province.",
    ),
    "advise.site": (
        "{technology} {band} MHz, cột {height} m, {power} dBm × {sectors} hướng, nghiêng {tilt}°",
        "{technology} {band} MHz, {height} m mast, {power} dBm × {sectors} sectors, tilt {tilt}°",
    ),
    "advise.operator": ("Nhà mạng", "Operator"),
    "advise.any": ("Bất kỳ (thôn không nhà mạng nào phủ)", "Any (villages no operator covers)"),
    "advise.towers": ("Số trạm mới", "New sites"),
    "advise.road_km": ("Cách đường tối đa (km; 0: mọi nơi)", "Road within, km (0: anywhere)"),
    "advise.run": ("Tìm vị trí", "Find positions"),
    "advise.running": ("Đang tính…", "Computing…"),
    "advise.summary": (
        "**{people}** người có sóng nhờ {sites} trạm mới (trong {uncovered} người chưa có sóng"
        " ở {villages} thôn).",
        "**{people}** people brought online by {sites} new sites (of {uncovered} people without"
        " signal in {villages} villages).",
    ),
    "advise.fewer": (
        "Chỉ đặt được {placed} trong {asked} trạm: không vị trí nào khác đưa thêm ai lên mạng.",
        "Only {placed} of {asked} sites placed: no other position brings anyone more online.",
    ),
    "advise.nothing": (
        "Không còn thôn nào chưa có sóng ({operator}): không cần trạm mới.",
        "No village is without signal ({operator}): there is nothing to advise.",
    ),
    "advise.no_candidates": (
        "Không có vị trí ứng viên nào cách đường trong {km} km.",
        "No candidate position within {km} km of a road.",
    ),
    "advise.rank": ("Thứ tự", "Rank"),
    "advise.position": ("Vị trí (vĩ độ, kinh độ)", "Position (lat, lon)"),
    "advise.commune": ("Xã/phường", "Commune"),
    "advise.district": ("Huyện/thị xã", "District"),
    "advise.villages": ("Thôn có sóng", "Villages brought online"),
    "advise.people": ("Số người", "People"),
    "advise.pick": ("Trạm mới số {rank}", "New site {rank}"),
    "advise.brings": (
        "{villages} thôn, {people} người có sóng",
        "{villages} villages, {people} people online",
    ),
    "advise.village_people": ("{people} người", "{people} people"),
    "advise.online_by": ("có sóng nhờ trạm mới số {rank}", "online by new site {rank}"),
    "advise.still_dark": ("vẫn chưa có sóng", "still without signal"),
    "advise.legend": (
        "Vàng: trạm mới; xanh: thôn có sóng nhờ trạm đó; đỏ: thôn vẫn chưa có sóng.",
        "Amber: new sites; blue: the villages each brings online; red: villages still"
        " without signal.",
    ),
    # --- end of catalogue ---
}


# The language radio's widget key, and a plain session key only the radio's callback writes.
# Streamlit forgets a widget's state after a run that does not draw it (the wall screen has no
# sidebar, so no radio) and a widget state can be replaced by whatever a later rerun request
# carries; a plain key is never touched by either, so once a choice is seen it stays.
LANG_KEY = "lang"
_CHOSEN = "lang_chosen"
# Keys of widgets whose options are shown by translated labels (see :func:`translated`).
_TRANSLATED = "lang_translated_widgets"
# The language the last full run drew the page in (see :func:`follow_language`).
_DRAWN = "lang_drawn"
# The choice also lives in a browser cookie, so a reload, a pasted link or a new tab opens in
# the language the user picked: a new Streamlit session starts from empty session state.
LANG_COOKIE = "ioc_lang"
_COOKIE_SEEN = "lang_cookie_seen"  # the language the cookie held when this session opened
_YEAR_S = 365 * 24 * 3600


def _from_cookie() -> None:
    """Once per session, before anything reads the language: the cookie's choice, if any."""
    if _COOKIE_SEEN in st.session_state:
        return
    try:
        value = st.context.cookies.get(LANG_COOKIE)
    except AttributeError:  # no script run context (a bare import)
        value = None
    st.session_state[_COOKIE_SEEN] = value
    if value in LANGS and _CHOSEN not in st.session_state:
        st.session_state[_CHOSEN] = value


def lang() -> str:
    _from_cookie()
    value = st.session_state.get(_CHOSEN) or st.session_state.get(LANG_KEY, DEFAULT_LANG)
    return value if value in LANGS else DEFAULT_LANG


def remember_language() -> None:
    """Have the browser's cookie hold the language picked in this session (a script, since
    Streamlit cannot set cookies). Written on every full run once the choice differs from what
    the cookie held when the session opened: a rerun racing the first run can cut its
    delivery short, and the same script again is harmless."""
    chosen = st.session_state.get(_CHOSEN)
    if chosen not in LANGS or st.session_state.get(_COOKIE_SEEN) == chosen:
        return
    cookie = f"{LANG_COOKIE}={chosen}; path=/; SameSite=Strict; max-age={_YEAR_S}"
    st.html(f"<script>document.cookie = {json.dumps(cookie)};</script>",
            unsafe_allow_javascript=True, width=1)  # fmt: skip


def choose(language: str) -> None:
    """Switch this session to ``language`` (e.g. a wall screen's ``?lang=en``)."""
    if language in LANGS and language != lang():
        _retranslate()
        st.session_state[_CHOSEN] = language


def translated(key: str, default: object = None) -> str:
    """``key`` for a choice widget whose options are shown through :func:`t` (a format_func).

    Streamlit holds a choice by its *label*, not its value: after a language switch the browser
    sends back the old language's labels, the new run finds none of them among its options and
    drops or resets the selection (the chips kept "Trạm BTS" in English). Keys passed through
    here are re-set by value when the language changes, so they are drawn in the new one.
    A ``default`` is seeded here instead of passed to the widget: Streamlit warns about a
    widget given both a default and a value set through the session state."""
    keys: set[str] = st.session_state.setdefault(_TRANSLATED, set())
    keys.add(key)
    if default is not None and key not in st.session_state:
        st.session_state[key] = default
    return key


def _retranslate() -> None:
    # Runs before the new run draws any widget: reading a choice now still decodes the old
    # labels (the previous run's format_func), and writing it back makes the coming run
    # encode it with the new language's labels.
    for key in st.session_state.get(_TRANSLATED, ()):
        # None is a selectbox with nothing chosen: written back it would stay so, not default.
        if st.session_state.get(key) is not None:
            st.session_state[key] = st.session_state[key]


def _language_changed() -> None:
    _retranslate()
    st.session_state[_CHOSEN] = st.session_state[LANG_KEY]


def mark_drawn() -> None:
    """Note the language this full run draws the page in (the sidebar's picker does)."""
    st.session_state[_DRAWN] = lang()


def follow_language() -> None:
    """At the top of an auto-refreshing fragment: if the language changed in a run that
    redrew only a fragment, rerun the whole page, so the sidebar and controls follow too.

    The browser sends a widget change together with whatever else is pending in the same
    batch, and a batch carrying a fragment's id reruns only that fragment: the switch then
    reached the session state, but the page outside the fragment stayed in the old language
    and the click looked lost."""
    drawn = st.session_state.get(_DRAWN)
    if drawn is not None and drawn != lang():
        mark_drawn()  # once: the rerun must not find the same difference again
        st.rerun()


def language_picker() -> None:
    """The language radio (sidebar and login form). Its widget state is re-seeded from the
    kept choice, so a radio that was not drawn for a while, or whose state a racing rerun
    overwrote, comes back showing the language in use. The cookie is read first: in a new
    session (a reload, a pasted link) the sidebar's picker runs before the page's first label,
    and would otherwise show the default while the page below is drawn in the cookie's."""
    _from_cookie()
    chosen = st.session_state.get(_CHOSEN)
    if chosen in LANGS and st.session_state.get(LANG_KEY) != chosen:
        st.session_state[LANG_KEY] = chosen
    st.radio(
        t("app.language"),
        list(LANGS),
        format_func=LANGS.__getitem__,
        key=LANG_KEY,
        horizontal=True,
        on_change=_language_changed,
    )
    remember_language()
    mark_drawn()


def t(key: str, **fields: object) -> str:
    """The label ``key`` in the chosen language (KeyError on a key missing from the catalogue)."""
    vi, en = CATALOGUE[key]
    text = vi if lang() == "vi" else en
    return text.format(**fields) if fields else text


def metric_label(kind: Kind, name: str) -> str:
    """A metric's name as its declaration gives it, in this session's language."""
    return metric(kind, name).label[lang()]


def locale() -> str:
    return _LOCALE[lang()]


def num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "—"
    pattern = "#,##0" + ("." + "0" * digits if digits else "")
    return str(format_decimal(value, format=pattern, locale=locale()))


def pct(fraction: float | None, digits: int = 1) -> str:
    if fraction is None:
        return "—"
    pattern = "#,##0" + ("." + "0" * digits if digits else "") + "%"
    return str(format_percent(fraction, format=pattern, locale=locale()))


def when(moment: datetime | None, form: str = "short") -> str:
    if moment is None:
        return "—"
    return str(format_datetime(moment, form, tzinfo=ZONE, locale=locale()))


def localized(frame: pd.DataFrame, digits: Mapping[str, int] | None = None) -> Any:
    """``frame`` for ``st.dataframe`` with its numbers and times shown in this session's
    language (babel), its columns still numbers and times, so a click on a header sorts by
    value. A pandas Styler does that: Streamlit shows its display values and sorts on the data.
    Streamlit's own ``NumberColumn(format="localized")`` follows the browser's locale, not the
    language chosen here. Floats get one decimal unless ``digits`` says; columns named "#"
    (ids) are left as they are."""
    places = dict(digits or {})
    spec: dict[str, Callable[[Any], str]] = {}
    for column in frame.columns:
        kind = frame[column].dtype.kind
        if column == "#" or kind not in "iufM":
            continue
        if kind == "M":
            spec[column] = _moment
        else:
            spec[column] = _number(places.get(column, 1 if kind == "f" else 0))
    return frame.style.format(spec)


def _moment(value: Any) -> str:
    return when(value.to_pydatetime()) if pd.notna(value) else "—"


def _number(digits: int) -> Callable[[Any], str]:
    def shown(value: Any) -> str:
        return num(value, digits) if pd.notna(value) else "—"

    return shown


def labeller(prefix: str, values: Iterable[str]) -> Callable[[str], str]:
    """A widget's ``format_func``: the labels are computed now, in this session's language
    (Streamlit may call format_func outside the script run, where the language is unknown)."""
    table = {v: t(prefix + v) for v in values}
    return table.__getitem__
